from neurojoule.cli import main

raise SystemExit(main())
