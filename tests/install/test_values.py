"""`--set KEY=VALUE`: the documented keys change the manifests; anything else is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from istiolite import __version__
from istiolite.install.values import BadValue, Values, accepted, from_sets


def test_defaults_are_istios_image_layout_at_this_version() -> None:
    values = from_sets([])
    assert values == Values()
    assert values.pilot == f"istiolite/pilot:{__version__}"
    assert values.proxy == f"istiolite/proxy:{__version__}"


def test_hub_and_tag_move_both_images_and_a_full_image_overrides_one() -> None:
    values = from_sets(["hub=registry.example/mesh", "tag=dev", "proxyImage=other/proxy:1"])
    assert values.pilot == "registry.example/mesh/pilot:dev"
    assert values.proxy == "other/proxy:1"


def test_values_are_parsed_to_their_types_and_the_last_set_wins() -> None:
    values = from_sets(["replicas=2", "nativeSidecar=True", "replicas=3", "cpuLimit="])
    assert (values.replicas, values.native_sidecar, values.cpu_limit) == (3, True, "")


def test_an_unknown_key_is_named_with_every_accepted_key() -> None:
    with pytest.raises(BadValue) as e:
        from_sets(["replica=2"])
    message = str(e.value)
    assert message.startswith("--set replica=2: unknown key 'replica'; accepted keys: hub, tag,")
    assert all(key in message for key, _, _ in accepted())


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("replicas=0", "replicas must be a whole number of at least 1"),
        ("replicas=two", "replicas must be a whole number of at least 1"),
        ("logLevel=verbose", "logLevel must be one of debug, info, warning, error"),
        ("nativeSidecar=yes", "nativeSidecar must be true or false"),
        ("imagePullPolicy=always", "imagePullPolicy must be one of Always, IfNotPresent, Never"),
        ("memoryRequest=lots", 'memoryRequest must be a Kubernetes quantity such as "500m"'),
        ("cpuRequest=", "cpuRequest must be a Kubernetes quantity"),
        ("hub=", "hub must not be empty"),
        ("replicas", "--set replicas: expected KEY=VALUE"),
    ],
)
def test_a_bad_value_names_the_key_and_what_it_accepts(item: str, expected: str) -> None:
    with pytest.raises(BadValue, match=expected.replace("(", r"\(")):
        from_sets([item])


@pytest.mark.parametrize("quantity", ["500m", "1", "0.5", "256Mi", "1G", "2e3", "1.5Gi"])
def test_kubernetes_quantities_are_accepted(quantity: str) -> None:
    assert from_sets([f"memoryLimit={quantity}"]).memory_limit == quantity


def test_docs_install_md_lists_every_key() -> None:
    text = (Path(__file__).parent.parent.parent / "docs" / "install.md").read_text()
    missing = [key for key, _, _ in accepted() if f"`{key}`" not in text]
    assert missing == [], "add these keys to docs/install.md"
