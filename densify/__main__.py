from densify.cli import main

main()
