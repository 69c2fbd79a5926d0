#!/usr/bin/env python3
"""1% churn of N people as an ldapmodify LDIF on stdout: a third modified, a third deleted,
a third added (deterministic)."""
import sys

n = int(sys.argv[1])
k = max(3, n // 100)
third = k // 3
out = sys.stdout
step = max(1, n // k)
picked = [i * step for i in range(k)]
for i in picked[:third]:
    out.write(f"dn: uid=p{i:06d},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Promoted\n\n")
for i in picked[third : 2 * third]:
    out.write(f"dn: uid=p{i:06d},ou=people,dc=example,dc=org\nchangetype: delete\n\n")
for j in range(k - 2 * third):
    uid = f"new{j:06d}"
    out.write(
        f"dn: uid={uid},ou=people,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\n"
        f"uid: {uid}\ncn: New Hire{j}\ngivenName: New\nsn: Hire{j}\nmail: {uid}@example.org\n"
        f"title: Intern\nemployeeType: staff\n\n"
    )
