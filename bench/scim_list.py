#!/usr/bin/env python3
"""The baseline read of the app: every User by SCIM paging (count=1000), as a plain client
would; prints how many."""
import json
import sys
import urllib.request

base, token = sys.argv[1], sys.argv[2]
start, seen = 1, 0
while True:
    req = urllib.request.Request(
        f"{base}/Users?startIndex={start}&count=1000",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/scim+json"},
    )
    with urllib.request.urlopen(req) as r:
        page = json.load(r)
    items = page.get("Resources") or []
    if not items:
        break
    seen += len(items)
    start += len(items)
print(seen)
