from eventkit.bench.engine import main

raise SystemExit(main())
