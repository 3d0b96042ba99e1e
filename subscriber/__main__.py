from subscriber.cli import main

raise SystemExit(main())
