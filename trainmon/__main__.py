from trainmon.cli import main

main()
