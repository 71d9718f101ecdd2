"""The first-token transformers judge on a tiny random model and a locally trained tokenizer (nothing downloaded)."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from videosafety_r1.evaluation import JudgeItem, TransformersJudge, label_token_ids

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "<|im_start|>verdict\n"
)


@pytest.fixture(scope="module")
def tiny():
    words = "the user asks a question and the assistant gives an answer that is safe or unsafe verdict".split()
    sentences = [" ".join(words[(i * 7 + j) % len(words)] for j in range(9)) for i in range(300)]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(sentences, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=False,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config).eval()
    return model, tok


ITEMS = [
    JudgeItem("how to bake bread?", "Mix flour and water.", id="a"),
    JudgeItem("a much longer question about {braces} and more words", "I refuse.", id="b"),
    JudgeItem("q", "r", id="c"),
]


def test_probabilities_are_well_formed_and_batch_invariant(tiny):
    model, tok = tiny
    judge = TransformersJudge(model, tok, batch_size=2)
    probs = judge.unsafe_probabilities(ITEMS)
    assert probs.shape == (3,) and torch.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all()
    one_by_one = torch.cat([judge.unsafe_probabilities([it]) for it in ITEMS])
    torch.testing.assert_close(probs, one_by_one, atol=1e-4, rtol=1e-4)  # left padding keeps the last position
    verdicts = judge.judge(ITEMS)
    assert [v.harmful for v in verdicts] == [p >= 0.5 for p in probs.tolist()]
    assert all(v.p_unsafe == pytest.approx(p) for v, p in zip(verdicts, probs.tolist()))
    assert "{braces}" in judge.render(ITEMS[1])  # user braces are not format fields
    info = judge.info()
    assert info["prompt_template_name"] == "guard_safe_unsafe" and info["prompt_template_version"] == "1"
    assert info["prompt_hash"] == judge.template.hash and info["label_words"] == ["safe", "unsafe"]


@pytest.mark.parametrize("winner, harmful", [("unsafe", True), ("safe", False)])
def test_decision_follows_the_label_logits(tiny, winner, harmful):
    model, tok = tiny
    safe_id, unsafe_id = label_token_ids(tok, ["safe", "unsafe"])
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[unsafe_id if winner == "unsafe" else safe_id] = 5.0
    original = model.get_output_embeddings()
    model.set_output_embeddings(head)
    try:
        for use_chat in (False, True):
            judge = TransformersJudge(model, tok, use_chat_template=use_chat)
            verdicts = judge.judge(ITEMS)
            expected = torch.sigmoid(torch.tensor(5.0 if harmful else -5.0)).item()
            assert all(v.harmful is harmful and v.p_unsafe == pytest.approx(expected, abs=1e-5) for v in verdicts)
            assert all(v.safe is (not harmful) for v in verdicts)
        assert judge.prompt_template_name == "tokenizer_chat_template"
    finally:
        model.set_output_embeddings(original)


def test_label_words_must_differ_in_first_token(tiny):
    _, tok = tiny
    with pytest.raises(ValueError, match="share a first token"):
        label_token_ids(tok, ["safe", "safe"])


def test_model_errors_become_counted_failures(tiny):
    model, tok = tiny

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kwargs):
            raise RuntimeError("out of memory")

    judge = TransformersJudge(Broken(), tok)
    verdicts = judge.judge(ITEMS[:2])
    assert all(v.safe is None and "out of memory" in v.error for v in verdicts)
