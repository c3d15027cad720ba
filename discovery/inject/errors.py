"""The one error the injector raises for a pod it cannot inject as written."""


class InjectionError(ValueError):
    """A field of the pod is wrong for injection; says which field and what is accepted."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")
