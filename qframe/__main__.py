from qframe.cli import main

main()
