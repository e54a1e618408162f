from tokenpost.cli.main import main

main()
