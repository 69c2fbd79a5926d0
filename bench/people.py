#!/usr/bin/env python3
"""N synthetic people as LDIF on stdout: deterministic (seeded), ~10% with a small JPEG
photo, the first BENCH_PROVISION (default 10,000) marked departmentNumber: provision."""
import base64
import os
import random
import sys

n = int(sys.argv[1])
provision = int(os.environ.get("BENCH_PROVISION", "10000"))
rng = random.Random(20261123)
titles = ["Engineer", "Analyst", "Designer", "Manager", "Researcher", "Support", "Sales"]
given = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken"]


def jpeg(i: int) -> bytes:
    """A small well-formed JPEG header (SOI, APP0, SOF0 96x96, SOS) with unique filler."""
    b = bytearray([0xFF, 0xD8, 0xFF, 0xE0, 0, 16]) + b"JFIF\0" + bytes([1, 1, 0, 0, 1, 0, 1, 0, 0])
    b += bytes([0xFF, 0xC0, 0, 17, 8, 0, 96, 0, 96, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    b += bytes([0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0])
    b += i.to_bytes(4, "big") + bytes(rng.randrange(1, 255) for _ in range(400))
    return bytes(b + bytes([0xFF, 0xD9]))


out = sys.stdout
for i in range(n):
    uid = f"p{i:06d}"
    g = given[i % len(given)]
    out.write(f"dn: uid={uid},ou=people,dc=example,dc=org\n")
    out.write("objectClass: inetOrgPerson\n")
    out.write(f"uid: {uid}\ncn: {g} Person{i}\ngivenName: {g}\nsn: Person{i}\n")
    out.write(f"mail: {uid}@example.org\ntitle: {rng.choice(titles)}\n")
    out.write(f"telephoneNumber: +1 555 {i % 10000:04d}\nemployeeType: staff\n")
    out.write(f"employeeNumber: {i}\n")
    if i < provision:
        out.write("departmentNumber: provision\n")
    if rng.random() < 0.10:
        out.write(f"jpegPhoto:: {base64.b64encode(jpeg(i)).decode()}\n")
    out.write("\n")
