from cepbus.cli import main

main()
