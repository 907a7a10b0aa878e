"""The YAML file named on the command line, as JSON on stdout, for tests/userdata.rs.
safe_load: a document that needs tags or Python objects is refused, as linkerd would."""

import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    json.dump(yaml.safe_load(f), sys.stdout)
