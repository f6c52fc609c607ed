"""BigDropForImageClassification checked the way transformers checks its own image classifiers.

In the style of transformers' `tests/models/<model>/test_modeling_<model>.py`: `BigDropModelTester` builds tiny
configs and inputs, and `TestBigDropModel` runs what transformers' `ModelTesterMixin` and `ConfigTester` check on an
image classifier, around three tiny backbones: ResNet (no attention), ViT and DINOv2. The checks are written for
this composite model; where one of transformers' checks does not apply, the skip says why.
"""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from stock_heads import TINY_CONV, TINY_VIT
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    Dinov2Config,
    Dinov2Model,
    ResNetConfig,
    ResNetForImageClassification,
    ResNetModel,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)
from transformers.modeling_outputs import ImageClassifierOutput

from hf_bigdrop import BigDropConfig, BigDropForImageClassification

BACKBONES = {
    "resnet": (lambda: ResNetConfig(**TINY_CONV), ResNetModel),
    "vit": (lambda: ViTConfig(**TINY_VIT), ViTModel),
    "dinov2": (lambda: Dinov2Config(**TINY_VIT), Dinov2Model),
}
ATTENTION_FLAGS = (
    "_supports_sdpa",
    "_supports_flash_attn",
    "_supports_flex_attn",
    "_supports_attention_backend",
)


class BigDropModelTester:
    """Tiny BigDrop configs, models and inputs around one backbone family."""

    def __init__(self, family: str, batch_size: int = 2, num_labels: int = 3, image_size: int = 32):
        self.family = family
        self.batch_size = batch_size
        self.num_labels = num_labels
        self.image_size = image_size
        self.backbone_class = BACKBONES[family][1]

    @property
    def has_attentions(self) -> bool:
        return self.family != "resnet"

    def get_backbone_config(self, **kwargs):
        config = BACKBONES[self.family][0]()
        for name, value in kwargs.items():
            setattr(config, name, value)
        return config

    def get_config(self, backbone_kwargs: dict | None = None, **kwargs) -> BigDropConfig:
        kwargs = {"num_labels": self.num_labels, "classifier_init": "normal", **kwargs}
        return BigDropConfig(backbone_config=self.get_backbone_config(**(backbone_kwargs or {})), **kwargs)

    def prepare_config_and_inputs(self, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        size = (self.batch_size, 3, self.image_size, self.image_size)
        pixel_values = torch.randn(size, generator=generator)
        labels = torch.randint(0, self.num_labels, (self.batch_size,), generator=generator)
        return self.get_config(), pixel_values, labels

    def create_model(
        self, config: BigDropConfig | None = None, **config_kwargs
    ) -> BigDropForImageClassification:
        torch.manual_seed(0)
        return BigDropForImageClassification(config or self.get_config(**config_kwargs)).eval()

    def expected_num_hidden_states(self, config: BigDropConfig) -> int:
        backbone = config.backbone_config
        # The embedding output, then one per stage (ResNet) or per layer (ViT, DINOv2).
        return len(backbone.depths) + 1 if self.family == "resnet" else backbone.num_hidden_layers + 1

    def expected_attention_shape(self, config: BigDropConfig) -> tuple[int, ...]:
        backbone = config.backbone_config
        tokens = (self.image_size // backbone.patch_size) ** 2 + 1
        return (self.batch_size, backbone.num_attention_heads, tokens, tokens)


@pytest.fixture(params=sorted(BACKBONES))
def tester(request) -> BigDropModelTester:
    return BigDropModelTester(request.param)


def _assert_outputs_equal(left, right):
    assert type(left) is type(right)
    if isinstance(left, (tuple, list)):
        assert len(left) == len(right)
        for a, b in zip(left, right):
            _assert_outputs_equal(a, b)
    elif isinstance(left, torch.Tensor):
        torch.testing.assert_close(left, right)
    else:
        assert left == right


class TestBigDropConfig:
    """What transformers' `ConfigTester` checks."""

    def test_builds_without_arguments(self):
        config = BigDropConfig()
        assert config.backbone_config.model_type == "resnet"
        assert BigDropForImageClassification(BigDropConfig(num_labels=2)).classifier.out_features == 2

    def test_common_properties(self, tester):
        config = tester.get_config(return_dict=False, output_hidden_states=True, problem_type="regression")
        assert (config.return_dict, config.output_hidden_states, config.problem_type) == (
            False,
            True,
            "regression",
        )
        config.num_labels = 5
        assert len(config.id2label) == len(config.label2id) == 5

    def test_json_round_trip(self, tester, tmp_path):
        config = tester.get_config(dropout_rate=0.7, pooling="mean")
        from_string = BigDropConfig.from_dict(json.loads(config.to_json_string()))
        config.to_json_file(tmp_path / "config.json")
        from_file = BigDropConfig.from_json_file(tmp_path / "config.json")
        for loaded in (from_string, from_file):
            assert loaded.to_dict() == config.to_dict()

    @pytest.mark.parametrize("subfolder", [None, "nested"])
    def test_save_and_load(self, tester, tmp_path, subfolder):
        config = tester.get_config(dropout_rate=0.3)
        config.save_pretrained(tmp_path / (subfolder or ""))
        loaded = AutoConfig.from_pretrained(tmp_path, subfolder=subfolder or "")
        assert isinstance(loaded, BigDropConfig)
        assert loaded.to_diff_dict() == config.to_diff_dict()  # all but `_name_or_path`, which is the folder


class TestBigDropModel:
    """What transformers' `ModelTesterMixin` checks on an image classifier."""

    def test_model_output_shapes(self, tester):
        config, pixel_values, labels = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        output = model(pixel_values, labels=labels)
        assert isinstance(output, ImageClassifierOutput)
        assert output.logits.shape == (tester.batch_size, tester.num_labels)
        assert output.loss.shape == ()
        assert output.hidden_states is None and output.attentions is None

    def test_forward_signature(self, tester):
        model = tester.create_model()
        names = list(inspect.signature(model.forward).parameters)
        assert names[:2] == [model.main_input_name, "labels"] == ["pixel_values", "labels"]
        assert {"output_attentions", "output_hidden_states", "return_dict"} <= set(names)

    @pytest.mark.parametrize(
        ("with_labels", "hidden_states", "attentions"),
        [
            (False, False, False),
            (True, False, False),
            (False, True, False),
            (False, False, True),
            (True, True, True),
        ],
    )
    def test_dict_and_tuple_outputs_are_equivalent(self, tester, with_labels, hidden_states, attentions):
        _, pixel_values, labels = tester.prepare_config_and_inputs()
        model = tester.create_model(tester.get_config(attn_implementation="eager"))
        kwargs = {"output_hidden_states": hidden_states, "output_attentions": attentions}
        if with_labels:
            kwargs["labels"] = labels
        with torch.no_grad():
            as_dict = model(pixel_values, **kwargs, return_dict=True)
            as_tuple = model(pixel_values, **kwargs, return_dict=False)
        assert isinstance(as_tuple, tuple)
        _assert_outputs_equal(as_tuple, as_dict.to_tuple())
        # (loss), logits, (hidden_states), (attentions): the fields that are not None, as transformers' heads do.
        assert len(as_tuple) == 1 + with_labels + hidden_states + (attentions and tester.has_attentions)

    def _check_hidden_states(self, tester, model, output, pixel_values):
        hidden_states = output.hidden_states if isinstance(output, ImageClassifierOutput) else output[1]
        assert len(hidden_states) == tester.expected_num_hidden_states(model.config)
        with torch.no_grad():
            expected = model.backbone(pixel_values, output_hidden_states=True).hidden_states
        _assert_outputs_equal(tuple(hidden_states), tuple(expected))

    def test_hidden_states_by_flag(self, tester):
        config, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model(config)
        with torch.no_grad():
            self._check_hidden_states(
                tester, model, model(pixel_values, output_hidden_states=True), pixel_values
            )
            assert model(pixel_values, output_hidden_states=False).hidden_states is None

    @pytest.mark.parametrize("where", ["config", "backbone_config"])
    @pytest.mark.parametrize("return_dict", [True, False])
    def test_hidden_states_by_config(self, tester, where, return_dict):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        if where == "config":
            config = tester.get_config(output_hidden_states=True)
        else:
            config = tester.get_config(backbone_kwargs={"output_hidden_states": True})
        model = tester.create_model(config)
        with torch.no_grad():
            output = model(pixel_values, return_dict=return_dict)
            self._check_hidden_states(tester, model, output, pixel_values)
            # The keyword still wins over the config.
            assert model(pixel_values, output_hidden_states=False).hidden_states is None

    def _check_attentions(self, tester, model, attentions):
        if not tester.has_attentions:
            assert attentions is None
            return
        assert len(attentions) == model.config.backbone_config.num_hidden_layers
        for attention in attentions:
            assert attention.shape == tester.expected_attention_shape(model.config)
            # Softmax rows: each query's weights sum to one.
            torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:-1]))

    def test_attentions_by_flag(self, tester):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model(tester.get_config(attn_implementation="eager"))
        with torch.no_grad():
            self._check_attentions(tester, model, model(pixel_values, output_attentions=True).attentions)
            assert model(pixel_values).attentions is None

    @pytest.mark.parametrize("where", ["config", "backbone_config"])
    def test_attentions_by_config(self, tester, where):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        if where == "config":
            config = tester.get_config(output_attentions=True, attn_implementation="eager")
        else:
            config = tester.get_config(attn_implementation="eager")
            config.backbone_config.output_attentions = True
        model = tester.create_model(config)
        with torch.no_grad():
            self._check_attentions(tester, model, model(pixel_values).attentions)
            assert model(pixel_values, output_attentions=False).attentions is None

    def test_retain_grad_hidden_states_attentions(self, tester):
        _, pixel_values, labels = tester.prepare_config_and_inputs()
        model = tester.create_model(tester.get_config(attn_implementation="eager", dropout_rate=0.0))
        output = model(pixel_values, labels=labels, output_hidden_states=True, output_attentions=True)
        retained = [output.hidden_states[0]] + ([output.attentions[0]] if tester.has_attentions else [])
        for tensor in retained:
            tensor.retain_grad()
        output.loss.backward()
        assert all(tensor.grad is not None for tensor in retained)

    def test_batching_equivalence(self, tester):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model()
        with torch.no_grad():
            batched = model(pixel_values, output_hidden_states=True)
            for row in range(tester.batch_size):
                single = model(pixel_values[row : row + 1], output_hidden_states=True)
                torch.testing.assert_close(single.logits[0], batched.logits[row], rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(single.hidden_states[-1][0], batched.hidden_states[-1][row])

    def test_determinism_in_eval_mode(self, tester):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model()
        with torch.no_grad():
            torch.testing.assert_close(model(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=0)

    def test_input_embeddings_are_the_backbones(self, tester):
        model = tester.create_model()
        if tester.family == "resnet":
            # Like the stock ResNet models, a convolutional backbone has no input embedding layer to hand out.
            with pytest.raises(NotImplementedError):
                model.get_input_embeddings()
        else:
            assert model.get_input_embeddings() is model.backbone.get_input_embeddings()

    def test_save_and_load(self, tester, tmp_path):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model()
        model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").exists()
        for loader in (BigDropForImageClassification, AutoModelForImageClassification):
            loaded = loader.from_pretrained(tmp_path).eval()
            assert isinstance(loaded, BigDropForImageClassification)
            assert set(loaded.state_dict()) == set(model.state_dict())
            for name, value in model.state_dict().items():
                torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)
            with torch.no_grad():
                torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits)

    def test_load_with_a_new_head_size(self, tester, tmp_path):
        tester.create_model().save_pretrained(tmp_path)
        loaded = BigDropForImageClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True
        )
        assert loaded.classifier.out_features == 5
        with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):  # refused without the flag
            BigDropForImageClassification.from_pretrained(tmp_path, num_labels=5)

    def test_training_step(self, tester):
        _, pixel_values, labels = tester.prepare_config_and_inputs()
        model = tester.create_model().train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        loss = model(pixel_values, labels=labels).loss
        loss.backward()
        assert torch.isfinite(loss)
        with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
        # Every parameter gets a gradient, except DINOv2's mask token, used only for masked-image pretraining.
        unused = {name for name, _ in model.named_parameters() if name.endswith("mask_token")}
        assert with_grad == {name for name, _ in model.named_parameters()} - unused
        optimizer.step()
        assert not torch.equal(before["classifier.weight"], model.classifier.weight)
        assert not torch.equal(next(iter(before.values())), next(iter(model.parameters())))

    def test_training_with_gradient_checkpointing(self, tester):
        if tester.family == "resnet":
            pytest.skip("ResNet models cannot checkpoint; test_modeling.py checks the error that says so.")
        _, pixel_values, labels = tester.prepare_config_and_inputs()
        grads = []
        for checkpointing in (False, True):
            model = tester.create_model(dropout_rate=0.0).train()
            if checkpointing:
                model.activation_checkpointing_enable()
            model(pixel_values, labels=labels).loss.backward()
            grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys()
        for name, grad in grads[0].items():
            torch.testing.assert_close(grads[1][name], grad, msg=name)

    @pytest.mark.parametrize(
        ("problem_type", "num_labels"),
        [("single_label_classification", 3), ("multi_label_classification", 3), ("regression", 1)],
    )
    def test_problem_types(self, tester, problem_type, num_labels):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model(num_labels=num_labels, problem_type=problem_type)
        generator = torch.Generator().manual_seed(3)
        if problem_type == "single_label_classification":
            labels = torch.randint(0, num_labels, (tester.batch_size,), generator=generator)
        elif problem_type == "multi_label_classification":
            labels = torch.randint(0, 2, (tester.batch_size, num_labels), generator=generator).float()
        else:
            labels = torch.randn(tester.batch_size, generator=generator)
        output = model(pixel_values, labels=labels)
        logits = output.logits
        expected = {
            "single_label_classification": lambda: torch.nn.functional.cross_entropy(logits, labels),
            "multi_label_classification": lambda: torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels
            ),
            "regression": lambda: torch.nn.functional.mse_loss(logits.squeeze(-1), labels),
        }[problem_type]()
        torch.testing.assert_close(output.loss, expected)

    def test_torch_export(self, tester):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model()
        exported = torch.export.export(model, args=(pixel_values,), strict=False)
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(pixel_values).logits, model(pixel_values).logits)

    # --- attention implementations --------------------------------------------------------------------------

    def test_attention_support_is_the_backbones(self, tester):
        model = tester.create_model()
        for flag in ATTENTION_FLAGS:
            assert getattr(model, flag) == getattr(tester.backbone_class, flag), flag
            # The class alone, without a backbone, promises nothing.
            assert getattr(BigDropForImageClassification, flag) is False
        expected = "sdpa" if tester.backbone_class._supports_sdpa else "eager"
        assert model.config._attn_implementation == model.backbone.config._attn_implementation == expected

    def test_eager_and_sdpa_give_the_same_logits(self, tester, tmp_path):
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        tester.create_model().save_pretrained(tmp_path)
        if not tester.has_attentions:
            # As for the stock ResNet classifier, a backbone without attention refuses an explicit "sdpa".
            for model_class in (BigDropForImageClassification, ResNetForImageClassification):
                with pytest.raises(ValueError, match="does not support an attention implementation"):
                    model_class.from_pretrained(tmp_path, attn_implementation="sdpa")
            return
        logits = {}
        for implementation in ("eager", "sdpa"):
            model = BigDropForImageClassification.from_pretrained(
                tmp_path, attn_implementation=implementation
            )
            assert (
                model.config._attn_implementation
                == model.backbone.config._attn_implementation
                == implementation
            )
            with torch.no_grad():
                logits[implementation] = model.eval()(pixel_values).logits
        torch.testing.assert_close(logits["sdpa"], logits["eager"], rtol=1e-4, atol=1e-5)

    def test_set_attn_implementation_reaches_the_backbone(self, tester):
        if not tester.has_attentions:
            pytest.skip("ResNet has no attention to switch.")
        _, pixel_values, _ = tester.prepare_config_and_inputs()
        model = tester.create_model()
        with torch.no_grad():
            sdpa_logits = model(pixel_values).logits
            model.set_attn_implementation("eager")
            assert model.config._attn_implementation == model.backbone.config._attn_implementation == "eager"
            output = model(pixel_values, output_attentions=True)
            self._check_attentions(tester, model, output.attentions)
            torch.testing.assert_close(output.logits, sdpa_logits, rtol=1e-4, atol=1e-5)
            model.set_attn_implementation("sdpa")
            assert model.backbone.config._attn_implementation == "sdpa"

    # --- checks of transformers' that do not apply ----------------------------------------------------------

    def test_can_init_all_missing_weights(self):
        pytest.skip(
            "BigDrop's from_pretrained refuses a checkpoint with missing weights on purpose (a reload must never "
            "silently re-initialise the head or the backbone); test_modeling.py checks that refusal."
        )

    def test_inputs_embeds_and_resize_embeddings(self):
        pytest.skip(
            "An image classifier takes pixel_values only: there are no token embeddings to feed or resize."
        )


def test_vit_backbone_outputs_are_the_stock_vits(tmp_path):
    # With a ViT backbone, attentions and hidden states are those of ViTForImageClassification on the same weights.
    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(**TINY_VIT, num_labels=3)).save_pretrained(tmp_path / "stock")
    stock = ViTForImageClassification.from_pretrained(tmp_path / "stock", attn_implementation="eager").eval()
    model = BigDropForImageClassification.from_backbone(tmp_path / "stock", num_labels=3, dropout_rate=0.0)
    model.save_pretrained(tmp_path / "bigdrop")
    model = BigDropForImageClassification.from_pretrained(
        tmp_path / "bigdrop", attn_implementation="eager"
    ).eval()
    model.classifier.load_state_dict(stock.classifier.state_dict())
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = model(pixel_values, output_attentions=True, output_hidden_states=True)
        theirs = stock(pixel_values, output_attentions=True, output_hidden_states=True)
    assert len(ours.attentions) == len(theirs.attentions) == 1
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 2
    for name in ("logits", "hidden_states", "attentions"):
        _assert_outputs_equal(getattr(ours, name), getattr(theirs, name))
