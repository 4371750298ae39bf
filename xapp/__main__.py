from xapp.cli import main

raise SystemExit(main())
