"""Exercise 9.1: crp_receptive_field(num_blocks) -> side of CRP's receptive field."""

from corpus import expect

EXERCISE = "9.1"


def correct_formula(num_blocks):
    return 1 + num_blocks * ((5 - 1) + (3 - 1))


def correct_loop(num_blocks):
    side = 1
    for _ in range(num_blocks):
        side += 4  # the 5x5 pooling
        side += 2  # the 3x3 convolution
    return side


@expect(r"only the poolings widen it")
def wrong_poolings_only(num_blocks):
    return 1 + 4 * num_blocks


@expect(r"only the convolutions widen it")
def wrong_convolutions_only(num_blocks):
    return 1 + 2 * num_blocks


@expect(r"centre pixel is not counted")
def wrong_without_the_centre(num_blocks):
    return 6 * num_blocks


@expect(r"as if the blocks ran in parallel")
def wrong_parallel(num_blocks):
    return 7
