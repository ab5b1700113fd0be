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
        "last_webhook": "Last webhook",
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
        "last_webhook": "Последний вебхук",
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
