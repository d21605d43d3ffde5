"""Attention, decoder and decoding, parametrized over every registered attention."""
import pytest
import torch

from captioner import build_decoder, sample
from captioner.search import block_repeated_ngrams, greedy, search
from captioner.attention import ATTENTIONS, HardAttention, build_attention
from captioner.options import DEFAULT_OPTIONS

from conftest import tiny_config


def _features(batch=3, locations=9, dim=16):
    return torch.randn(batch, locations, dim)  # 9 locations: a 3x3 grid, as local needs


@pytest.mark.parametrize("rows_per_image", [1, 2])
def test_deterministic_attention_weights_sum_to_one_and_context_is_their_average(
        vocab, attention_kind, rows_per_image):
    if ATTENTIONS[attention_kind].reinforce:
        pytest.skip("a sampling attention's context is one sampled location (tests below)")
    attention = build_attention(tiny_config(vocab, attention_kind))
    features = _features()
    projected = attention.project(features)
    out = attention(features, projected, torch.randn(3 * rows_per_image, 20))
    assert torch.allclose(out.weights.sum(1), torch.ones(3 * rows_per_image))
    values = attention.values(features, projected).repeat_interleave(rows_per_image, 0)
    expected = (out.weights.unsqueeze(2) * values).sum(1)
    assert torch.allclose(out.context, expected, atol=1e-6)
    assert out.log_prob is None


def test_hard_attention_inference_picks_one_location():
    attention = HardAttention(16, 20, 14, inference="argmax").eval()
    features = _features()
    out = attention(features, attention.project(features), torch.randn(3, 20))
    chosen = out.weights.argmax(1)
    assert torch.equal(out.context, features[torch.arange(3), chosen])
    assert out.log_prob is None


def test_hard_attention_expectation_option():
    attention = HardAttention(16, 20, 14, inference="expectation").eval()
    features = _features()
    out = attention(features, attention.project(features), torch.randn(3, 20))
    assert torch.allclose(out.context, (out.weights.unsqueeze(2) * features).sum(1), atol=1e-6)


def test_hard_attention_training_samples_and_returns_log_prob():
    attention = HardAttention(16, 20, 14, expectation_prob=0.0).train()
    features = _features(batch=64)
    out = attention(features, attention.project(features), torch.randn(64, 20))
    # each context is exactly one annotation vector, and log_prob is log alpha of that one
    match = (out.context.unsqueeze(1) == features).all(dim=2)  # (B, L)
    assert (match.sum(1) >= 1).all()
    location = match.float().argmax(1)
    assert torch.allclose(out.log_prob, out.weights.gather(1, location[:, None]).squeeze(1).log())
    # with probability 0.5 (the paper's trick) the expected context is used and log_prob is 0
    attention.expectation_prob = 0.5
    out = attention(features, attention.project(features), torch.randn(64, 20))
    expected_rows = out.log_prob == 0
    assert 5 < int(expected_rows.sum()) < 59


def test_teacher_forcing_shapes_and_every_parameter_gets_a_gradient(vocab, attention_kind):
    decoder = build_decoder(tiny_config(vocab, attention_kind, gate="channel")).train()
    captions = torch.tensor([vocab.encode(["a", "red", "square", "on", "grass"])] * 4)
    out = decoder(_features(batch=4), captions)
    assert out.logits.shape == (4, captions.shape[1] - 1, len(vocab))
    assert torch.allclose(out.alphas.sum(-1), torch.ones(4, captions.shape[1] - 1))
    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), captions[:, 1:].flatten())
    if ATTENTIONS[attention_kind].reinforce:
        assert out.log_probs is not None and out.log_probs.shape == (4, captions.shape[1] - 1)
        loss = loss - out.log_probs.sum()  # a REINFORCE-shaped term
    else:
        assert out.log_probs is None
    loss.backward()
    missing = [n for n, p in decoder.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


@pytest.mark.parametrize("gate", ["scalar", "channel", "none"])
def test_gate_options(vocab, gate):
    decoder = build_decoder(tiny_config(vocab, gate=gate)).eval()
    assert (decoder.gate is None) == (gate == "none")
    assert len(greedy(decoder, _features(), max_length=5)) == 3


def test_shared_images_and_ragged_captions_equal_one_caption_at_a_time(vocab, attention_kind):
    """Training's batches: each image once (image_of), captions of different lengths padded.
    Every caption's outputs equal running it alone on its own image; padding outputs are 0."""
    torch.manual_seed(2)
    decoder = build_decoder(tiny_config(vocab, attention_kind, hard_inference="expectation")).eval()
    for p in decoder.parameters():
        torch.nn.init.normal_(p, std=0.3)
    features = _features(batch=2)
    words = [["a", "red", "square"], ["two", "dogs"], ["a", "man", "rides", "a", "red", "dog"],
             ["grass"]]
    encoded = [vocab.encode(w) for w in words]
    captions = torch.zeros(len(encoded), max(map(len, encoded)), dtype=torch.long)
    for i, ids in enumerate(encoded):
        captions[i, :len(ids)] = torch.tensor(ids)
    image_of = torch.tensor([1, 0, 1, 0])
    with torch.no_grad():
        packed = decoder(features, captions, image_of)
        for i, ids in enumerate(encoded):
            alone = decoder(features[image_of[i]].unsqueeze(0), torch.tensor([ids]))
            n = len(ids) - 1
            assert torch.allclose(packed.logits[i, :n], alone.logits[0], atol=1e-5), words[i]
            assert torch.allclose(packed.alphas[i, :n], alone.alphas[0], atol=1e-6)
            assert not packed.logits[i, n:].any() and not packed.alphas[i, n:].any()


@pytest.mark.parametrize("gate", ["scalar", "channel", "none"])
def test_decoding_steps_equal_teacher_forcing(vocab, attention_kind, gate):
    """step() on precomputed per-location rows (decoding) == forward() on z_t (training).

    Which decoders take that fast path: all of them except a channel gate (beta * z_t is
    not a mix of per-location rows when beta has a value per channel). Attentions scored with
    h_t have no gate: their W_c c_t is always a mix of the rows W_c v_i."""
    torch.manual_seed(1)
    decoder = build_decoder(tiny_config(vocab, attention_kind, gate=gate)).eval()
    for p in decoder.parameters():  # weights large enough that a wrong term would show
        torch.nn.init.normal_(p, std=0.3)
    features = _features(batch=3)
    captions = torch.tensor([vocab.encode(c) for c in
                             (["a", "red", "square"], ["two", "dogs", "run"], ["a", "man", "rides"])])
    with torch.inference_mode():
        forced = decoder(features, captions)
        memory = decoder.prepare(features, decoding=True)
        current = ATTENTIONS[attention_kind].query == "current"
        fast = memory.out_rows is not None
        assert fast == (current or gate != "channel")
        assert (memory.gate_rows is not None) == (fast and not current)
        state = decoder.init_state(memory)
        for t in range(captions.shape[1] - 1):
            out = decoder.step(captions[:, t], state, memory)
            assert torch.allclose(out.logits, forced.logits[:, t], atol=1e-4), t
            assert torch.allclose(out.attention.weights, forced.alphas[:, t], atol=1e-5)
            state = out.state


@pytest.fixture
def decoder(vocab, attention_kind):
    return build_decoder(tiny_config(vocab, attention_kind)).eval()


def test_beam_size_one_equals_greedy_exactly(decoder):
    features = _features(batch=5)
    with torch.inference_mode():
        greedy_hyps = greedy(decoder, features, max_length=12)
        beam_hyps = [h[0] for h in search(decoder, features, beam_size=1, max_length=12)]
    for g, b in zip(greedy_hyps, beam_hyps):
        assert g.tokens == b.tokens
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-5)
        assert torch.allclose(g.alphas, b.alphas)


def test_beam_search_batched_equals_one_image_at_a_time(decoder):
    features = _features(batch=4)
    with torch.inference_mode():
        batched = search(decoder, features, beam_size=4, max_length=10, n_best=3)
        single = [search(decoder, features[i:i + 1], beam_size=4, max_length=10,
                              n_best=3)[0] for i in range(4)]
    for b_hyps, s_hyps in zip(batched, single):
        assert [h.tokens for h in b_hyps] == [h.tokens for h in s_hyps]
        assert [h.score for h in b_hyps] == pytest.approx([h.score for h in s_hyps], abs=1e-4)


def test_settled_images_leave_early_without_changing_results(decoder, monkeypatch):
    """Stopping an image once no live beam can overtake its n-best gives what running every
    beam to its <end> gives."""
    from captioner.search import Beam

    features = _features(batch=6)
    with torch.inference_mode():
        # Early settling applies without a length penalty (with one, every beam must end).
        early = search(decoder, features, beam_size=4, max_length=15, n_best=2,
                       length_penalty=0.0)
        monkeypatch.setattr(Beam, "settled",
                            lambda self, scores, finished: finished.view(scores.shape).all(1))
        full = search(decoder, features, beam_size=4, max_length=15, n_best=2,
                      length_penalty=0.0)
    for e_hyps, f_hyps in zip(early, full):
        assert [h.tokens for h in e_hyps] == [h.tokens for h in f_hyps]
        assert [h.log_prob for h in e_hyps] == pytest.approx([h.log_prob for h in f_hyps], abs=1e-5)


def test_beam_search_n_best_is_sorted_distinct_with_attention_per_word(decoder):
    with torch.inference_mode():
        results = search(decoder, _features(batch=2, locations=9), beam_size=5,
                              max_length=8, n_best=5)
    for hyps in results:
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 5
        for h in hyps:
            assert len(h.tokens) <= 8
            assert h.alphas.shape == (len(h.tokens), 9)
            assert torch.allclose(h.alphas.sum(-1), torch.ones(len(h.tokens)), atol=1e-5)
            assert not {0, 1, 2} & set(h.tokens)  # no <pad>, <start>, <end> among the words


def test_beam_search_finds_at_least_greedys_log_prob_and_length_penalty_reranks(decoder):
    features = _features(batch=6)
    with torch.inference_mode():
        g = greedy(decoder, features, max_length=10)
        b = search(decoder, features, beam_size=6, max_length=10, length_penalty=0.0)
        normalized = search(decoder, features, beam_size=6, max_length=10, n_best=6,
                                 length_penalty=1.0)
    assert sum(h[0].log_prob for h in b) >= sum(h.log_prob for h in g) - 1e-4
    for hyps in normalized:
        for h in hyps:
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1), abs=1e-5)


def test_max_length_is_respected(decoder):
    with torch.inference_mode():
        for hyps in search(decoder, _features(), beam_size=3, max_length=2):
            assert len(hyps[0].tokens) <= 2
        assert all(len(h.tokens) <= 1 for h in greedy(decoder, _features(), max_length=1))


def test_special_words_are_never_emitted_even_when_most_likely(decoder):
    with torch.no_grad():
        decoder.out.bias[:4] += 50.0  # <pad>, <start>, <end>, <unk> dominate every step
        decoder.out.bias[2] -= 100.0  # ... except <end>, so captions run to max_length
    with torch.inference_mode():
        hyps = (greedy(decoder, _features(), max_length=6)
                + [h for hs in search(decoder, _features(), beam_size=3, max_length=6) for h in hs]
                + sample(decoder, _features(), max_length=6))
    for h in hyps:
        assert h.tokens and not set(h.tokens) & {0, 1, 2, 3}


def test_sampling_is_seeded_and_valid(decoder):
    features = _features(batch=4)
    with torch.inference_mode():
        a = sample(decoder, features, 10, generator=torch.Generator().manual_seed(1))
        b = sample(decoder, features, 10, generator=torch.Generator().manual_seed(1))
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert all(h.log_prob < 0 and len(h.tokens) <= 10 for h in a)


def test_decoding_does_not_change_the_model(decoder):
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    features = _features()
    with torch.inference_mode():
        first = search(decoder, features, beam_size=3)
        second = search(decoder, features, beam_size=3)
    assert [h[0].tokens for h in first] == [h[0].tokens for h in second]
    assert not decoder.training
    assert all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())


def _repeats_an_ngram(tokens: list[int], n: int) -> bool:
    ngrams = list(zip(*(tokens[k:] for k in range(n))))
    return len(ngrams) != len(set(ngrams))


def test_block_repeated_ngrams_forbids_exactly_the_completing_words():
    words = torch.tensor([[5, 6, 7, 5, 6], [5, 6, 7, 8, 9], [4, 4, 4, 4, 4]])
    blocked = block_repeated_ngrams(torch.zeros(3, 12), words, 3)
    assert torch.isinf(blocked[0]).nonzero().flatten().tolist() == [7]  # "5 6 7" again
    assert not torch.isinf(blocked[1]).any()
    assert torch.isinf(blocked[2]).nonzero().flatten().tolist() == [4]
    pairs = block_repeated_ngrams(torch.zeros(3, 12), torch.tensor(
        [[5, 6, 5, 7, 5], [5, 6, 7, 8, 9], [9, 4, 9, 9, 9]]), 2)
    assert torch.isinf(pairs[0]).nonzero().flatten().tolist() == [6, 7]  # "5 6", "5 7" again
    assert not torch.isinf(pairs[1]).any()
    assert torch.isinf(pairs[2]).nonzero().flatten().tolist() == [4, 9]
    assert torch.equal(block_repeated_ngrams(torch.zeros(1, 12), torch.tensor([[5, 6]]), 3),
                       torch.zeros(1, 12))  # too few words for a repeat


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("ngram", [2, 3])
def test_decoding_never_repeats_an_ngram_unless_asked(vocab, beam_size, ngram):
    """A random decoder with large weights loops; with blocking (the default) it cannot."""
    torch.manual_seed(0)
    decoder = build_decoder(tiny_config(vocab)).eval()
    for p in decoder.parameters():
        torch.nn.init.normal_(p, std=1.0)
    features = _features(batch=40)

    def decode(block: bool, **default) -> list[list[int]]:
        if beam_size == 1:
            return [h.tokens for h in greedy(decoder, features, max_length=20, block_repeats=block,
                                             **default)]
        return [hyps[0].tokens for hyps in search(decoder, features, beam_size=beam_size,
                                                       max_length=20, block_repeats=block, **default)]

    with torch.inference_mode():
        assert sum(_repeats_an_ngram(t, ngram) for t in decode(False, repeat_ngram=ngram)) > 0
        assert sum(_repeats_an_ngram(t, ngram) for t in decode(True, repeat_ngram=ngram)) == 0
        if ngram == DEFAULT_OPTIONS.repeat_ngram:  # blocking at this size is the default
            assert decode(True) == ([h.tokens for h in greedy(decoder, features, max_length=20)]
                                    if beam_size == 1 else
                                    [h[0].tokens for h in search(decoder, features,
                                                                      beam_size=beam_size, max_length=20)])


def test_a_registered_attention_is_usable_everywhere_the_config_goes(vocab):
    """A new attention is one module plus one registry entry: the config accepts it, the
    decoder builds it, decoding runs over it, the training CLI offers it."""
    from captioner.attention import ATTENTIONS, AttentionOutput, mix_rows, register_attention
    from training.config import parse_config

    class Uniform(torch.nn.Module):  # the same weight on every location
        def project(self, features):
            return features[..., :1]

        def forward(self, features, projected, hidden, mode=None, temperature=1.0):
            alpha = torch.full((hidden.shape[0], features.shape[1]), 1.0 / features.shape[1])
            return AttentionOutput(mix_rows(alpha, features), alpha, alpha)

    with pytest.raises(ValueError, match="attention must be one of"):
        tiny_config(vocab, "uniform")
    register_attention("uniform")(lambda config: Uniform())
    try:
        decoder = build_decoder(tiny_config(vocab, "uniform")).eval()
        [hyp] = greedy(decoder, _features(batch=1), max_length=4)
        assert torch.allclose(hyp.alphas, torch.full_like(hyp.alphas, 1 / 9))
        assert parse_config(["--data", "x", "--attention", "uniform"]).model.attention == "uniform"
        with pytest.raises(ValueError, match="already registered"):
            register_attention("uniform")(lambda config: Uniform())
    finally:
        del ATTENTIONS["uniform"]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_each_words_probability_is_the_models_own_given_the_words_before(decoder, vocab, beam_size):
    """Word confidence: the decoder's p(word | photo, words before), from greedy and from the
    chosen beam (followed back through its parents), equal to teacher forcing on its words."""
    features = _features(batch=3)
    with torch.inference_mode():
        if beam_size == 1:
            hyps = greedy(decoder, features, max_length=8)
        else:
            hyps = [h[0] for h in search(decoder, features, beam_size=3, max_length=8)]
        for i, hyp in enumerate(hyps):
            assert hyp.word_log_probs.shape == (len(hyp.tokens),)
            if not hyp.tokens:
                continue
            # log p(caption) = the words' log p + the closing <end>'s (<= 0)
            assert float(hyp.word_log_probs.sum()) >= hyp.log_prob - 1e-4
            captions = torch.tensor([[vocab.start_id, *hyp.tokens]])
            forced = decoder(features[i:i + 1], captions,  # attending as decoding did
                             hard_mode=DEFAULT_OPTIONS.hard_mode).logits[0].log_softmax(-1)
            expected = forced[torch.arange(len(hyp.tokens)), torch.tensor(hyp.tokens)]
            assert torch.allclose(hyp.word_log_probs, expected, atol=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_repeat_penalty_discourages_saying_a_content_word_twice(vocab, beam_size):
    """Each earlier use of a content word costs the penalty in the search, while the caption
    still reports the model's own probabilities (teacher forcing on its words)."""
    torch.manual_seed(0)
    decoder = build_decoder(tiny_config(vocab)).eval()
    for p in decoder.parameters():  # large random weights: a decoder that repeats itself
        torch.nn.init.normal_(p, std=1.0)
    features = _features(batch=40)
    content = torch.arange(len(vocab)) >= 4  # every word except the specials

    def run(penalty: float):
        with torch.inference_mode():
            return [h[0] for h in search(decoder, features, beam_size=beam_size, max_length=12,
                                         length_penalty=0.0, repeat_ngram=0,
                                         repeat_penalty=penalty, content_words=content)]

    def says_a_word_twice(hyp) -> bool:
        return len(set(hyp.tokens)) < len(hyp.tokens)

    free, penalised, barred = run(0.0), run(2.0), run(1e4)
    assert sum(map(says_a_word_twice, free)) > sum(map(says_a_word_twice, penalised)) > 0
    assert not any(map(says_a_word_twice, barred))
    paid = 0
    with torch.inference_mode():
        for i, hyp in enumerate(penalised):
            captions = torch.tensor([[vocab.start_id, *hyp.tokens, vocab.end_id]])
            forced = decoder(features[i:i + 1], captions).logits[0].log_softmax(-1)
            own = forced[torch.arange(len(hyp.tokens) + 1), captions[0, 1:]]
            assert torch.allclose(hyp.word_log_probs, own[:-1], atol=1e-4)
            assert hyp.log_prob == pytest.approx(float(own.sum()), abs=1e-3)
            # the k-th use of a word (k = 0, 1, ...) cost k times the penalty
            earlier_uses = sum(hyp.tokens[:t].count(w) for t, w in enumerate(hyp.tokens))
            assert hyp.score == pytest.approx(hyp.log_prob - 2.0 * earlier_uses, abs=1e-3)
            paid += earlier_uses > 0
    assert paid > 0  # the last assertion compared a score that paid the penalty


def test_an_attention_temperature_sharpens_each_map_as_softmax_of_scores_over_t(decoder, vocab):
    """softmax(e / 0.5) is softmax(e) squared and renormalised: the first word's map (the same
    state either way) under temperature 0.5 against the model's own (1)."""
    features = _features(batch=2)
    captions = torch.tensor([vocab.encode("a dog runs".split())] * 2)
    with torch.inference_mode():
        plain = decoder(features, captions).alphas[:, 0]  # (B, L)
        sharp = decoder(features, captions, temperature=0.5).alphas[:, 0]
    squared = plain ** 2
    assert torch.allclose(sharp, squared / squared.sum(-1, keepdim=True), atol=1e-6)
    assert (sharp.max(-1).values >= plain.max(-1).values).all()


def test_the_models_own_temperature_applies_when_decoding_never_in_training(vocab):
    decoder = build_decoder(tiny_config(vocab, attention_temperature=0.5))
    features = _features(batch=1)
    assert decoder.prepare(features).temperature == 1.0  # a new module is in training mode
    decoder.eval()
    assert decoder.prepare(features).temperature == 0.5
    assert decoder.prepare(features, temperature=2.0).temperature == 2.0  # the caller's wins
    with pytest.raises(ValueError, match="attention_temperature"):
        tiny_config(vocab, attention_temperature=0.0)
