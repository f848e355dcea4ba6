import sys

from .cli import main, run_with_fixed_hash_seed

run_with_fixed_hash_seed()
sys.exit(main())
