from cepbus_app.cli import main

main()
