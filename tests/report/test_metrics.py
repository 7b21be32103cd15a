from pipeline.report.metrics import fixed, pareto_front


def test_pareto_front_keeps_only_points_nothing_beats():
    # (latency, accuracy): b is slower and less accurate than a; d ties a on latency with less accuracy.
    points = [(1.0, 90.0), (2.0, 85.0), (0.5, 80.0), (1.0, 89.0), (3.0, 95.0)]
    assert pareto_front(points) == [2, 0, 4]  # sorted by latency


def test_pareto_front_of_equal_points_keeps_both():
    assert pareto_front([(1.0, 90.0), (1.0, 90.0)]) == [0, 1]


def test_fixed_keeps_three_significant_digits_for_tiny_values():
    assert [fixed(v) for v in (0.0, 0.002134, 0.05, 0.5, 12.3456)] == ["0.000", "0.00213", "0.0500", "0.500", "12.346"]
