import pytest

from workbench.errors import NotFoundError
from workbench.registry import Registry


def test_register_create_list():
    reg = Registry("loss")

    @reg.register("mse")
    def mse(scale=1.0):
        return ("mse", scale)

    @reg.register("cos")
    def cos():
        return "cos"

    assert reg.list() == ["cos", "mse"]
    assert reg.create("mse", scale=2.0) == ("mse", 2.0)
    assert "mse" in reg and len(reg) == 2


def test_unknown_name_lists_available():
    reg = Registry("encoder")
    reg.register("geoclip")(lambda: 1)
    reg.register("rff")(lambda: 2)
    with pytest.raises(NotFoundError, match=r"encoder 'sh' not found. Available: \['geoclip', 'rff'\]"):
        reg.create("sh")


def test_duplicate_registration_is_refused():
    reg = Registry("model")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)
