"""Exercise 6.2: cascade_forward(decoder, features) -> logits, rnlib's RefineNetDecoder by hand."""

import functools

import torch.nn.functional as F

from corpus import expect

EXERCISE = "6.2"


def correct_as_in_the_notebook(decoder, features):
    previous = []
    for block, group in zip(decoder.blocks, decoder.groups):
        paths = [decoder.adapt[str(i)](features[i]) for i in group]
        previous = [block(paths + previous)]
    return decoder.classifier(previous[0])


def correct_with_none(decoder, features):
    x = None
    for block, group in zip(decoder.blocks, decoder.groups):
        paths = [decoder.adapt[str(i)](features[i]) for i in group]
        x = block(paths + ([x] if x is not None else []))
    return decoder.classifier(x)


def correct_reduce_with_the_dropouts(decoder, features):
    def step(previous, k):
        group = decoder.groups[k]
        paths = [decoder.adapt[str(i)](decoder.feature_dropout(features[i])) for i in group]
        return [decoder.blocks[k](paths + previous)]

    (x,) = functools.reduce(step, range(len(decoder.blocks)), [])
    return decoder.classifier(decoder.classifier_dropout(x))


@expect(r"RefineNetBlock .*path 0 expects|was built for")
def wrong_previous_first(decoder, features):
    previous = []
    for block, group in zip(decoder.blocks, decoder.groups):
        previous = [block(previous + [decoder.adapt[str(i)](features[i]) for i in group])]
    return decoder.classifier(previous[0])


@expect(r"was built for 2 paths, got 1 tensors")
def wrong_without_the_previous_block(decoder, features):
    x = None
    for block, group in zip(decoder.blocks, decoder.groups):
        x = block([decoder.adapt[str(i)](features[i]) for i in group])
    return decoder.classifier(x)


@expect(r"output shape \(1, \d+, \d+, \d+\), expected \(1, 5, \d+, \d+\)")
def wrong_without_the_classifier(decoder, features):
    previous = []
    for block, group in zip(decoder.blocks, decoder.groups):
        previous = [block([decoder.adapt[str(i)](features[i]) for i in group] + previous)]
    return previous[0]


@expect(r"output shape .*\n.*\nHint: .*no resize at the end")
def wrong_upsampled_to_the_image(decoder, features):
    previous = []
    for block, group in zip(decoder.blocks, decoder.groups):
        previous = [block([decoder.adapt[str(i)](features[i]) for i in group] + previous)]
    logits = decoder.classifier(previous[0])
    return F.interpolate(logits, scale_factor=4, mode="bilinear")


@expect(r"changes from call to call")
def wrong_dropout_in_training_mode(decoder, features):
    previous = []
    for block, group in zip(decoder.blocks, decoder.groups):
        paths = [decoder.adapt[str(i)](F.dropout(features[i], 0.5)) for i in group]
        previous = [block(paths + previous)]
    return decoder.classifier(previous[0])


@expect(r"runs the decoder given but not a 2-cascade one")
def wrong_hard_coded_four_cascade(decoder, features):
    x = []
    for k, i in enumerate((3, 2, 1, 0)[:len(decoder.blocks)]):
        x = [decoder.blocks[k]([decoder.adapt[str(i)](features[i])] + x)]
    return decoder.classifier(x[0])


def library_the_decoders_own_forward(decoder, features):
    return decoder(features)


def library_forward_called_directly(decoder, features):
    return type(decoder).forward(decoder, features)
