from vboplan.entry import main

main()
