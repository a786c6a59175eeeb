"""Exercise 8.1: relative_cost(costs, field, model, reference) -> float."""

from corpus import expect

EXERCISE = "8.1"


def correct_ratio(costs, field, model, reference):
    return costs[model][field] / costs[reference][field]


def correct_with_get(costs, field, model, reference):
    mine, theirs = costs.get(model, {}).get(field), costs.get(reference, {}).get(field)
    return float(mine) / float(theirs)


@expect(r"upside down")
def wrong_upside_down(costs, field, model, reference):
    return costs[reference][field] / costs[model][field]


@expect(r"difference, not the ratio")
def wrong_difference(costs, field, model, reference):
    return costs[model][field] - costs[reference][field]


@expect(r"gives a percentage")
def wrong_percentage(costs, field, model, reference):
    return 100 * costs[model][field] / costs[reference][field]


@expect(r"ignores its field argument")
def wrong_always_gmacs(costs, field, model, reference):
    return costs[model]["gmacs"] / costs[reference]["gmacs"]
