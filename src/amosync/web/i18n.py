"""The status page's words in English and Russian, and picking one for a request.

`?lang=ru|en` wins (and is remembered in a cookie); then the cookie; then the best of the
two in `Accept-Language`; English otherwise.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

LANGS = ("en", "ru")
LANG_COOKIE = "amosync_lang"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "amosync status",
        "login_title": "amosync: log in",
        "login_prompt": "Enter the admin token (AMOSYNC_ADMIN_TOKEN).",
        "login_button": "Log in",
        "login_failed": "Wrong token.",
        "login_throttled": "Too many wrong tokens from your address: try again in {seconds} s.",
        "logout": "Log out",
        "loopback_notice": "No AMOSYNC_ADMIN_TOKEN is configured: this page, the read API and "
        "the metrics are served to this machine (loopback) only.",
        "health": "Health checks",
        "check": "Check",
        "state": "State",
        "detail": "Detail",
        "ok": "ok",
        "failing": "failing",
        "unknown": "unknown",
        "token": "amoCRM token",
        "token_kind": "Kind",
        "access_expires": "Access token expires",
        "refresh_expires": "Refresh token expires",
        "subscription": "Webhook subscription",
        "no_public_url": "not checked: set AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET",
        "counters": "Counters",
        "deals": "Deals",
        "deals_rentprog": "Deals with RentProg ID",
        "contacts": "Contacts",
        "events_by_status": "Events by status",
        "backlog": "Backlog (pending)",
        "oldest_pending": "Oldest pending",
        "api_last_hour": "API requests in the last hour",
        "budget": "catch-up budget {budget}/h, rate limit {rate}/s",
        "last_webhook": "Last webhook from amoCRM",
        "chart_title": "Events per minute, last {hours} h",
        "received": "received",
        "processed": "processed",
        "latest_events": "Latest events",
        "all": "all",
        "failed_only": "failed only",
        "id": "ID",
        "received_at": "Received",
        "entity": "Entity",
        "action": "Action",
        "entity_id": "Entity ID",
        "status": "Status",
        "attempts": "Attempts",
        "error": "Error",
        "retry": "Retry",
        "no_events": "No events.",
        "retried": "Event {id} is queued again.",
        "not_retried": "Event {id} was not failed; nothing changed.",
        "search": "Find a deal",
        "search_hint": "amoCRM deal ID or RentProg ID",
        "search_button": "Search",
        "no_deal": "No deal found for “{q}”.",
        "name": "Name",
        "price": "Price",
        "rentprog_id": "RentProg ID",
        "updated": "Updated in amoCRM",
        "deleted": "deleted",
        "refreshed": "Refreshed",
        "seconds": "{n} s",
        "verification": "Verification against amoCRM",
        "verify_at": "Last run",
        "verify_checked": "Rows compared",
        "verify_diverged": "Differed from amoCRM",
        "verify_repaired": "Repaired",
        "verify_unrepaired": "Not repaired",
        "verify_examples": "Examples",
        "verify_never": "No verification has run yet (amosync verify, or the worker in the "
        "background).",
        "verify_coverage": "{entity}: {verified} of {stored} verified",
        "verify_background": "The worker verifies {calls} batches an hour (up to {rows} rows).",
        "verify_off": "Background verification is off (AMOSYNC_VERIFY_CALLS_PER_HOUR=0).",
        "none": "—",
        "warn": "warning",
        "since": "Since",
        "ago": "{age} ago",
        "banner_storage": "Sync is stopped: the database does not accept writes.",
        "fix_storage": "Webhooks are answered 503 and amoCRM delivers them again later. Free "
        "disk space or repair the database; if its file was deleted or replaced, restore it "
        "and restart amosync.",
        "banner_schema": "Sync is stopped: the database schema is not up to date.",
        "fix_schema": "Run `amosync migrate`, then restart amosync.",
        "banner_paused": "Sync is paused.",
        "fix_paused": "Nothing is lost: events wait (pending) and are processed once the pause "
        "ends. If amoCRM refused the token, re-authorise (`amosync auth login`, or a new "
        "long-lived token); an IP block or a rate-limit pause ends by itself.",
        "banner_credentials": "Sync is paused: amoCRM refuses our credentials.",
        "fix_credentials": "Re-authorise: `amosync auth login` (OAuth) or set a new "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN and restart. Events wait (pending) meanwhile.",
        "banner_worker": "Sync is stopped: no worker is running.",
        "fix_worker": "Start `amosync worker`, or `amosync serve` without --no-worker. "
        "Webhooks are still stored meanwhile.",
        "banner_unreachable": "Sync is stalled: amoCRM does not answer.",
        "fix_unreachable": "Check the network, DNS and AMOSYNC_AMOCRM_SUBDOMAIN. Events are "
        "retried; those out of attempts end failed and can be retried below.",
        "banner_backlog": "Sync is stalled: events wait too long.",
        "fix_backlog": "See the worker and amoCRM checks below; the backlog drains once they "
        "are ok.",
        "banner_silence": "No webhook from amoCRM for too long.",
        "fix_silence": "Check the webhook subscription (`amosync webhooks list`, then "
        "`amosync webhooks register`) and that amoCRM reaches the public URL.",
    },
    "ru": {
        "title": "amosync: состояние",
        "login_title": "amosync: вход",
        "login_prompt": "Введите токен администратора (AMOSYNC_ADMIN_TOKEN).",
        "login_button": "Войти",
        "login_failed": "Неверный токен.",
        "login_throttled": "Слишком много неверных токенов с вашего адреса: повторите через "
        "{seconds} с.",
        "logout": "Выйти",
        "loopback_notice": "AMOSYNC_ADMIN_TOKEN не задан: эта страница, API чтения и метрики "
        "доступны только с этой машины (loopback).",
        "health": "Проверки",
        "check": "Проверка",
        "state": "Состояние",
        "detail": "Подробности",
        "ok": "в порядке",
        "failing": "ошибка",
        "unknown": "неизвестно",
        "token": "Токен amoCRM",
        "token_kind": "Вид",
        "access_expires": "Access-токен истекает",
        "refresh_expires": "Refresh-токен истекает",
        "subscription": "Подписка на вебхуки",
        "no_public_url": "не проверяется: задайте AMOSYNC_PUBLIC_URL и AMOSYNC_WEBHOOK_SECRET",
        "counters": "Счётчики",
        "deals": "Сделки",
        "deals_rentprog": "Сделки с RentProg ID",
        "contacts": "Контакты",
        "events_by_status": "События по статусам",
        "backlog": "Очередь (pending)",
        "oldest_pending": "Самое старое в очереди",
        "api_last_hour": "Запросы к API за последний час",
        "budget": "бюджет сверки {budget}/ч, лимит {rate}/с",
        "last_webhook": "Последний вебхук от amoCRM",
        "chart_title": "События в минуту, последние {hours} ч",
        "received": "получено",
        "processed": "обработано",
        "latest_events": "Последние события",
        "all": "все",
        "failed_only": "только ошибки",
        "id": "ID",
        "received_at": "Получено",
        "entity": "Сущность",
        "action": "Действие",
        "entity_id": "ID сущности",
        "status": "Статус",
        "attempts": "Попытки",
        "error": "Ошибка",
        "retry": "Повторить",
        "no_events": "Событий нет.",
        "retried": "Событие {id} снова в очереди.",
        "not_retried": "Событие {id} не было в статусе failed; ничего не изменилось.",
        "search": "Найти сделку",
        "search_hint": "ID сделки amoCRM или RentProg ID",
        "search_button": "Найти",
        "no_deal": "Сделка по запросу «{q}» не найдена.",
        "name": "Название",
        "price": "Бюджет",
        "rentprog_id": "RentProg ID",
        "updated": "Изменена в amoCRM",
        "deleted": "удалена",
        "refreshed": "Обновлено",
        "seconds": "{n} с",
        "verification": "Сверка с amoCRM",
        "verify_at": "Последняя сверка",
        "verify_checked": "Сверено строк",
        "verify_diverged": "Расходились с amoCRM",
        "verify_repaired": "Исправлено",
        "verify_unrepaired": "Не исправлено",
        "verify_examples": "Примеры",
        "verify_never": "Сверка ещё не запускалась (amosync verify или фоновая сверка воркера).",
        "verify_coverage": "{entity}: сверено {verified} из {stored}",
        "verify_background": "Воркер сверяет {calls} пачек в час (до {rows} строк).",
        "verify_off": "Фоновая сверка выключена (AMOSYNC_VERIFY_CALLS_PER_HOUR=0).",
        "none": "—",
        "warn": "внимание",
        "since": "С каких пор",
        "ago": "{age} назад",
        "banner_storage": "Синхронизация остановлена: база данных не принимает записи.",
        "fix_storage": "На вебхуки уходит 503, amoCRM пришлёт их повторно. Освободите место "
        "на диске или почините базу; если её файл удалён или подменён, восстановите его и "
        "перезапустите amosync.",
        "banner_schema": "Синхронизация остановлена: схема базы данных устарела.",
        "fix_schema": "Выполните `amosync migrate` и перезапустите amosync.",
        "banner_paused": "Синхронизация приостановлена.",
        "fix_paused": "Ничего не теряется: события ждут (pending) и будут обработаны, когда "
        "пауза закончится. Если amoCRM отклонил токен, авторизуйтесь заново "
        "(`amosync auth login` или новый долгосрочный токен); блокировка IP и пауза по "
        "лимиту запросов заканчиваются сами.",
        "banner_credentials": "Синхронизация приостановлена: amoCRM не принимает наш токен.",
        "fix_credentials": "Авторизуйтесь заново: `amosync auth login` (OAuth) или новый "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN и перезапуск. События пока ждут (pending).",
        "banner_worker": "Синхронизация остановлена: не запущен ни один обработчик (worker).",
        "fix_worker": "Запустите `amosync worker` или `amosync serve` без --no-worker. "
        "Вебхуки тем временем сохраняются.",
        "banner_unreachable": "Синхронизация стоит: amoCRM не отвечает.",
        "fix_unreachable": "Проверьте сеть, DNS и AMOSYNC_AMOCRM_SUBDOMAIN. События "
        "повторяются; исчерпавшие попытки получат статус failed, их можно повторить ниже.",
        "banner_backlog": "Синхронизация стоит: события слишком долго ждут обработки.",
        "fix_backlog": "Смотрите проверки обработчика и amoCRM ниже; очередь разойдётся, "
        "когда они будут в порядке.",
        "banner_silence": "От amoCRM слишком давно нет вебхуков.",
        "fix_silence": "Проверьте подписку на вебхуки (`amosync webhooks list`, затем "
        "`amosync webhooks register`) и что amoCRM достаёт до публичного адреса.",
    },
}


def pick_language(conn: HTTPConnection) -> str:
    asked = conn.query_params.get("lang", "")
    if asked in LANGS:
        return asked
    remembered = conn.cookies.get(LANG_COOKIE, "")
    if remembered in LANGS:
        return remembered
    return from_accept_language(conn.headers.get("accept-language", ""))


def from_accept_language(header: str) -> str:
    """The supported language with the highest q-value (ties: the one listed first)."""
    best, best_q = "en", 0.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best
