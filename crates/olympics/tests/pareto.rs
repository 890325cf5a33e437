//! The Pareto front is exactly the brute-force non-dominated set (property test), and interval-confirmed
//! dominance implies dominance.

use olympics::pareto::{dominance_separable, dominates, pareto_front, Goal, MetricValue};
use proptest::prelude::*;

fn brute_force_front(candidates: &[Vec<MetricValue>], goals: &[Goal]) -> Vec<usize> {
    (0..candidates.len())
        .filter(|&index| {
            !(0..candidates.len())
                .any(|other| dominates(&candidates[other], &candidates[index], goals))
        })
        .collect()
}

fn metric() -> impl Strategy<Value = MetricValue> {
    // Small integer points so that ties (and exact duplicates) are common.
    (0u8..6, 0u8..3, 0u8..3).prop_map(|(point, below, above)| MetricValue {
        point: f64::from(point),
        lower: f64::from(point) - f64::from(below),
        upper: f64::from(point) + f64::from(above),
    })
}

fn goal() -> impl Strategy<Value = Goal> {
    prop_oneof![Just(Goal::Minimize), Just(Goal::Maximize)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn front_equals_brute_force(
        goals in proptest::collection::vec(goal(), 1..4),
        raw in proptest::collection::vec(proptest::collection::vec(metric(), 3), 0..25),
    ) {
        let candidates: Vec<Vec<MetricValue>> =
            raw.into_iter().map(|metrics| metrics[..goals.len()].to_vec()).collect();
        prop_assert_eq!(pareto_front(&candidates, &goals), brute_force_front(&candidates, &goals));
    }

    #[test]
    fn separable_dominance_is_dominance(
        goals in proptest::collection::vec(goal(), 3),
        a in proptest::collection::vec(metric(), 3),
        b in proptest::collection::vec(metric(), 3),
    ) {
        if dominance_separable(&a, &b, &goals) {
            prop_assert!(dominates(&a, &b, &goals));
        }
        prop_assert!(!(dominates(&a, &b, &goals) && dominates(&b, &a, &goals)));
    }
}

#[test]
fn the_three_objective_example() {
    let goals = [Goal::Minimize, Goal::Minimize, Goal::Maximize];
    let exact = MetricValue::exact;
    let candidates = vec![
        vec![exact(10.0), exact(100.0), exact(0.90)], // baseline
        vec![exact(4.0), exact(30.0), exact(0.89)],   // faster, smaller, a bit worse: front
        vec![exact(12.0), exact(100.0), exact(0.90)], // dominated by the baseline
        vec![exact(4.0), exact(30.0), exact(0.89)],   // duplicate of a front member: also front
    ];
    assert_eq!(pareto_front(&candidates, &goals), vec![0, 1, 3]);
    // Overlapping latency intervals: dominance on points, not separable.
    let a = vec![
        MetricValue {
            point: 10.0,
            lower: 9.0,
            upper: 12.5,
        },
        exact(100.0),
        exact(0.9),
    ];
    let b = vec![
        MetricValue {
            point: 12.0,
            lower: 11.0,
            upper: 13.0,
        },
        exact(100.0),
        exact(0.9),
    ];
    assert!(dominates(&a, &b, &goals));
    assert!(!dominance_separable(&a, &b, &goals));
}
