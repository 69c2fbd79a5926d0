//! `plan --save` then `apply FILE`: exactly the reviewed actions, never a stale one.

mod common;

use common::*;

#[test]
fn a_reviewed_plan_applies_its_actions_and_refuses_the_one_that_changed_since() {
    let ldif = [
        Person {
            uid: "ada",
            given: "Ada",
            sn: "Lovelace",
            title: "Analyst",
        }
        .ldif(),
        Person {
            uid: "grace",
            given: "Grace",
            sn: "Hopper",
            title: "Captain",
        }
        .ldif(),
    ]
    .concat();
    let tb = Testbed::start(&ldif);
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n\n\
         dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Commodore\n",
    );
    let saved = tb.dir.path().join("reviewed.json");
    tb.ok(&cfg, &["plan", "--save", saved.to_str().unwrap()]);

    // After the review, Grace's title changes again: her reviewed update is stale.
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Rear Admiral\n");
    let out = tb.ok(&cfg, &["apply", saved.to_str().unwrap()]);
    assert!(
        out.contains("applied 1") && out.contains("refused 1"),
        "{out}"
    );
    assert!(out.contains("refused grace@example.org"), "{out}");
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess"
    );
    assert_eq!(
        tb.scim_user("grace@example.org").unwrap()["title"],
        "Captain",
        "stale action not applied"
    );

    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["apply", saved.to_str().unwrap()]);
    assert!(
        out.contains("applied 0"),
        "applying the same plan twice changes nothing: {out}"
    );
    assert_eq!(tb.scim_writes(), writes);
}
