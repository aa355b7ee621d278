from filestats.cli import main

raise SystemExit(main())
