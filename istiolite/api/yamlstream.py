"""A YAML stream of untrusted text read into plain data, or one error that says where and why.

Every reader of users' YAML (the file registry, `istiolite analyze`, `istiolite kube-inject`,
the webhook's annotations) goes through `load_all`, because PyYAML lets much escape as other
exceptions than `yaml.YAMLError`, or not at all:

- a value that does not fit its explicit tag (`!!float x`, `!!timestamp 2001-99`,
  `!!bool maybe`, an integer of more digits than Python converts) raises ValueError,
  AttributeError, KeyError... from deep in the constructor;
- an alias may name a node that contains it (`&a [*a]`): the data then contains itself, and
  anything that walks it recurses until the stack runs out;
- aliases of aliases (the "billion laughs") make a few hundred bytes stand for a billion
  values: cheap to load, since they are shared, but endless for whatever copies, validates or
  serializes the data afterwards;
- nesting close to libyaml's own limit (1,000 levels) is deeper than Python's recursion limit
  lets a recursive reader follow.

The last three are checked on the composed nodes of each document, before any Python object is
built, as go-yaml (Kubernetes' YAML library) refuses "excessive aliasing".
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml import CSafeLoader
from yaml.constructor import ConstructorError

# No Kubernetes object nests this deep (a pod template sits about 15 levels down), and a reader
# that recurses once or twice per level stays well inside Python's limit of 1,000 frames.
MAX_DEPTH = 100
# Values that aliases may add to one document, beyond those written out. Anchors for shared
# blocks (`<<: *defaults`) add a few hundred; a "billion laughs" needs millions.
MAX_ALIAS_VALUES = 100_000

_SHORT_TAG = "tag:yaml.org,2002:"


class YamlError(ValueError):
    """The stream is not YAML istiolite reads; `line` and `column` are 1-based, 0 if unknown."""

    def __init__(self, problem: str, *, line: int = 0, column: int = 0) -> None:
        self.problem, self.line, self.column = problem, line, column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{problem}")


class Loader(CSafeLoader):
    """libyaml's safe loader (ten times the pure-Python one's speed); values that do not fit
    their tag become a ConstructorError that names the value, its tag and its place."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as e:  # whatever the tag's constructor raised: the value is bad
            raise ConstructorError(None, None, _bad_value(node, e), node.start_mark) from None


def load_all(text: str, *, loader: type[Loader] = Loader) -> list[Any]:
    """Every non-empty document of the stream; YamlError when any of them cannot be read."""
    reader = loader(text)
    try:
        documents = []
        while reader.check_node():
            node = reader.get_node()
            if node is None:
                continue
            check_shape(node)
            document = reader.construct_document(node)
            if document is not None:
                documents.append(document)
        return documents
    except yaml.YAMLError as e:
        raise _error(e) from None
    finally:
        reader.dispose()


def check_shape(root: yaml.Node) -> None:
    """YamlError when a document nests too deep, contains itself, or aliases multiply it.

    The nodes are walked as the tree they stand for, an alias counted as often as it is used,
    so the walk costs the values written plus at most MAX_ALIAS_VALUES more.
    """
    distinct: set[int] = set()
    visits = 0
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            ancestors.discard(id(node))
            continue
        if id(node) in ancestors:
            raise _at(node, "an alias refers to a node that contains it, so the data has no end")
        if depth > MAX_DEPTH:
            raise _at(node, f"nests deeper than {MAX_DEPTH} levels; no Kubernetes object does")
        visits += 1
        distinct.add(id(node))
        if visits - len(distinct) > MAX_ALIAS_VALUES:
            raise _at(
                node,
                f"aliases make this document more than {MAX_ALIAS_VALUES:,} values larger than "
                f"it is written (a 'billion laughs'); write the values out instead",
            )
        children = _children(node)
        if children:
            ancestors.add(id(node))
            stack.append((node, depth, True))
            stack.extend((child, depth + 1, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _bad_value(node: yaml.Node, error: Exception) -> str:
    tag = str(node.tag).replace(_SHORT_TAG, "!!")
    if isinstance(node, yaml.ScalarNode):
        value = str(node.value)
        shown = repr(value if len(value) <= 40 else value[:37] + "...")
        # ValueError messages say something useful (a day out of range, too many digits);
        # the others are the constructor's internals ('NoneType' has no attribute ...).
        detail = f" ({error})" if type(error) is ValueError else ""
        return f"{shown} is not a valid {tag} value{detail}"
    return f"this {tag} node cannot be read ({type(error).__name__}: {error})"


def _at(node: yaml.Node, problem: str) -> YamlError:
    mark = node.start_mark
    return YamlError(problem, line=mark.line + 1, column=mark.column + 1)


def _error(e: yaml.YAMLError) -> YamlError:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    if mark is None:
        return YamlError(problem)
    return YamlError(problem, line=mark.line + 1, column=mark.column + 1)
