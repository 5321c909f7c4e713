//! Scenarios: who may join a group. A follower without the household key is refused and
//! told why; a stereo pair of two different models is refused with a typed error (both
//! when the second half joins and when the leader is asked to pair two speakers); the
//! refusals leave the leader serving the followers it has.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use lockstep::control::{Refusal, Role};
use lockstep::node::{Follower, FollowerConfig, NodeError};
use node::*;

#[test]
fn a_follower_with_the_wrong_household_key_is_refused_and_the_group_plays_on() {
    let leader = leader();
    let good = follower(follower_config(&leader, Role::Full, 30.0));
    let mut bad = follower_config(&leader, Role::Full, 0.0);
    bad.key = other_key();
    match Follower::start(bad) {
        Err(NodeError::Refused(Refusal::WrongKey)) => {}
        other => panic!("expected a wrong-key refusal, got {other:?}"),
    }
    let err = NodeError::Refused(Refusal::WrongKey).to_string();
    assert!(err.contains("wrong household key"), "{err}");
    let stats = leader.stats();
    assert_eq!(stats.refused_wrong_key, 1);
    assert_eq!(leader.followers().len(), 1, "only the good follower joined");
    // The good one keeps playing.
    assert!(
        wait_until(Duration::from_secs(3), || good.status().playing).is_some(),
        "{:?}",
        good.status()
    );
    let before = good.status().packets_received;
    std::thread::sleep(Duration::from_millis(500));
    assert!(good.status().packets_received > before + 50);
    good.stop().expect("stops");
}

#[test]
fn a_stereo_pair_of_two_models_is_refused_with_both_models_named() {
    let leader = leader();
    let mut left = follower_config(&leader, Role::Left, 10.0);
    left.model = "lockstep-one".into();
    let left = follower(left);
    let mut right: FollowerConfig = follower_config(&leader, Role::Right, -10.0);
    right.model = "other-brand-x".into();
    match Follower::start(right) {
        Err(NodeError::Refused(Refusal::ModelMismatch {
            model,
            partner_model,
        })) => {
            assert_eq!(model, "other-brand-x");
            assert_eq!(partner_model, "lockstep-one");
        }
        other => panic!("expected a model mismatch, got {other:?}"),
    }
    // The same model is welcome as the other half.
    let mut right = follower_config(&leader, Role::Right, -10.0);
    right.model = "lockstep-one".into();
    let right = follower(right);
    assert_eq!(right.session().expect("joined").role, Role::Right);
    // A second left is refused too.
    let mut second_left = follower_config(&leader, Role::Left, 5.0);
    second_left.model = "lockstep-one".into();
    assert!(matches!(
        Follower::start(second_left),
        Err(NodeError::Refused(Refusal::RoleTaken { role: Role::Left }))
    ));
    left.stop().expect("stops");
    right.stop().expect("stops");
}

#[test]
fn the_leader_refuses_to_pair_two_models_and_pairs_two_of_one() {
    let leader = leader();
    let mut a = follower_config(&leader, Role::Full, 10.0);
    a.model = "lockstep-one".into();
    let a = follower(a);
    let mut b = follower_config(&leader, Role::Full, 20.0);
    b.model = "lockstep-mini".into();
    let b = follower(b);
    let mut c = follower_config(&leader, Role::Full, 30.0);
    c.model = "lockstep-one".into();
    let c = follower(c);
    let id = |f: &Follower| f.session().expect("joined").session;
    match leader.pair(id(&a), id(&b)) {
        Err(NodeError::ModelMismatch {
            model,
            partner_model,
        }) => assert_eq!(
            (model.as_str(), partner_model.as_str()),
            ("lockstep-one", "lockstep-mini")
        ),
        other => panic!("expected a model mismatch, got {other:?}"),
    }
    leader.pair(id(&a), id(&c)).expect("same model pairs");
    assert!(
        wait_until(Duration::from_secs(2), || {
            a.session().map(|s| s.role) == Some(Role::Left)
                && c.session().map(|s| s.role) == Some(Role::Right)
        })
        .is_some(),
        "the pair took its roles"
    );
    assert_eq!(b.session().map(|s| s.role), Some(Role::Full));
    for f in [a, b, c] {
        f.stop().expect("stops");
    }
}
