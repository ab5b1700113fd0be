from amosync.cli.main import main

main()
