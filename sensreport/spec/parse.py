"""The YAML spec: parse, validate every key at once, resolve paths, return a :class:`Spec`.

Validation runs in two passes over the whole document and collects every problem
before raising one :class:`~sensreport.errors.SpecError`: first the JSON Schema
(types, enums, unknown keys with a "did you mean" hint), then the rules a schema
cannot say (exactly one model source, files that must exist). Each problem carries the
key path (``methods.finite_difference.step``) and the line in the file. No model is
loaded here.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from pathlib import Path

import yaml

from ..distributions import KINDS, from_json, problem
from ..errors import Problem, SpecError
from ..sizes import format_bytes, parse_size
from .schema import MEASURES, SCHEMA
from .types import ModelSpec, PointsSpec, Spec, default_checks
from .objects import InMemory, check_objects, dump_text, is_object_error, split_objects, unwrap


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None, problems: list | None = None) -> dict:
    """Map each key path to its 1-based line; note duplicate keys."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if problems is not None and key in seen:
                problems.append(
                    Problem(_dotted(path + (key,)), "duplicate key (YAML keeps the last one)", key_node.start_mark.line + 1)
                )
            seen.add(key)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out, problems)
    return out


def _dotted(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error) -> list[tuple[tuple, str]] | tuple[tuple, str]:
    """Turn a jsonschema error into (key path, a sentence saying expected vs got); a
    list of them for a mapping with several unknown keys."""
    path = tuple(error.absolute_path)
    got = _show(error.instance)
    v = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "x-expected" in schema:
        return path, f"expected {schema['x-expected']}, got {got}"
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed] or ["?"]
        out = []
        for key in extra:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            msg = f"unknown key '{key}'"
            msg += f" (did you mean '{hint[0]}'?)" if hint else f"; allowed keys: {', '.join(allowed)}"
            out.append((path + (key,), msg))
        return out
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return path, f"missing required key '{missing[0] if missing else error.message}'"
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"expected {expected.replace('null', 'nothing')}, got {got}"
    if v == "enum":
        return path, f"expected one of {', '.join(map(str, error.validator_value))}, got {got}"
    if v == "const":
        return path, f"expected {error.validator_value!r}, got {got}"
    if v in ("minimum", "exclusiveMinimum"):
        op = ">=" if v == "minimum" else ">"
        return path, f"expected a number {op} {error.validator_value}, got {got}"
    if v == "minItems":
        return path, f"expected at least {error.validator_value} item(s), got {len(error.instance)}"
    if v == "maxItems":
        return path, f"expected at most {error.validator_value} item(s), got {len(error.instance)}"
    return path, error.message


def _show(value) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) < 60 else f'"{value[:57]}..."'
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    if value is None:
        return "nothing"
    return repr(value)




#: Deepest nesting of mappings and lists a spec may have (a point of rank 30 fits).
MAX_DEPTH = 40
#: A spec whose aliases (``*name``) expand it past this many values, and to more than
#: twice what is written, is refused: a few hundred bytes of aliases can expand to
#: gigabytes (a "billion laughs").
MAX_EXPANDED = 100_000


def _node_children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _data_children(value) -> list:
    if isinstance(value, dict):
        return [x for pair in value.items() for x in pair]
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def _check_shape(root, children, line_of, shown) -> None:
    """Refuse a document that refers to itself, nests deeper than :data:`MAX_DEPTH` or
    whose aliases expand it past :data:`MAX_EXPANDED`, in time linear in what is written
    (shared parts are measured once)."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    kids: dict[int, list] = {}
    state: dict[int, int] = {}  # 1: entered, 2: measured
    stack = [(root, False)]
    while stack:
        obj, leaving = stack.pop()
        i = id(obj)
        if leaving:
            ks = kids[i]
            size[i] = 1 + sum(size[id(k)] for k in ks)
            height[i] = 1 + max((height[id(k)] for k in ks), default=0)
            state[i] = 2
            continue
        if state.get(i) == 2:
            continue
        if state.get(i) == 1:
            line = line_of(obj) if line_of else None
            raise SpecError([Problem("", "an alias refers to the mapping or list that contains it", line)], shown)
        state[i] = 1
        kids[i] = children(obj)
        stack.append((obj, True))
        stack.extend((k, False) for k in kids[i])
    if height[id(root)] > MAX_DEPTH:
        node, path = root, ()
        for _ in range(MAX_DEPTH):
            child = max(kids[id(node)], key=lambda k: height[id(k)])
            path += (_step(node, child),)
            node = child
        line = line_of(node) if line_of else None
        raise SpecError([Problem(_dotted(path), f"nested more than {MAX_DEPTH} levels deep", line)], shown)
    expanded, written = size[id(root)], len(size)
    if expanded > MAX_EXPANDED and expanded > 2 * written:
        worst = min((o for o in size if size[o] > MAX_EXPANDED), key=lambda o: size[o])
        obj = next(x for x, _ in _walk_ids(root, children) if id(x) == worst)
        line = line_of(obj) if line_of else None
        raise SpecError([Problem("", f"its aliases (*name) expand the spec to {expanded:,} values from {written:,} "
                                     "written; refusing to expand it (write the values out, or give the points "
                                     "as a csv or npy file)", line)], shown)


def _step(parent, child) -> str | int:
    """The key or index by which ``parent`` (a node or a value) holds ``child``."""
    if isinstance(parent, (yaml.MappingNode, dict)):
        pairs = parent.value if isinstance(parent, yaml.MappingNode) else list(parent.items())
        for k, v in pairs:
            if child is v or child is k:
                return str(k.value if isinstance(k, yaml.Node) else k)
    items = parent.value if isinstance(parent, yaml.SequenceNode) else parent
    return next(i for i, item in enumerate(items) if item is child)


def _walk_ids(root, children):
    """Each distinct object below ``root`` once, with its parent (depth first)."""
    seen, stack = set(), [(root, None)]
    while stack:
        obj, parent = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj, parent
        stack.extend((k, obj) for k in children(obj))


def line_of(lines: dict[tuple, int], key: str) -> int | None:
    """The line of a dotted key (``methods.rows.outputs[0]``) in a spec's line map, or of
    the nearest enclosing key the spec has; None when it has none of them (a default)."""
    path: list = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        path.append(int(part[1:-1]) if part.startswith("[") else part)
    path = tuple(path)
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path) if path else None


def load_spec(path: str | Path) -> Spec:
    """Read, validate and resolve the spec at ``path``; raise SpecError listing all problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("", f"spec file not found: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem("", f"cannot read the spec file: {exc}")], str(path)) from None
    return parse_spec(text, base_dir=path.resolve().parent, path=path)


def parse_spec(source: str | dict, base_dir: str | Path = ".", path: Path | None = None) -> Spec:
    """Validate a spec given as YAML text or as an already-parsed mapping.

    Relative paths resolve against ``base_dir`` (the spec file's folder for
    :func:`load_spec`).
    """
    import jsonschema

    shown = str(path) if path else None
    problems: list[Problem] = []
    lines: dict[tuple, int] = {}
    if isinstance(source, dict):
        _check_shape(source, _data_children, None, shown)
        try:
            # in-memory objects (a keras.Model, an array, a DataFrame) become placeholders
            # the text describes; they are checked by check_objects, not dumped
            data = split_objects(source)
            text = dump_text(data)
        except (yaml.YAMLError, TypeError, ValueError) as exc:
            raise SpecError([Problem("", f"the spec mapping cannot be written as YAML: {exc}")], shown) from None
    else:
        text = source
        try:
            loader = yaml.SafeLoader(text)
            try:
                try:
                    node = loader.get_single_node()
                except RecursionError:
                    raise SpecError([Problem("", f"nested more than {MAX_DEPTH} levels deep",
                                             loader.get_mark().line + 1)], shown) from None
                if node is not None:
                    _check_shape(node, _node_children, lambda n: n.start_mark.line + 1, shown)
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            what = getattr(exc, "problem", None) or str(exc)
            raise SpecError([Problem("", f"not valid YAML: {what}", line)], shown) from None
        if node is not None:
            lines = _line_map(node, problems=problems)
    if not isinstance(data, dict):
        raise SpecError([Problem("", "the spec must be a YAML mapping with keys model, inputs, methods")], shown)

    validator = jsonschema.Draft202012Validator(SCHEMA)
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        if is_object_error(error.instance):
            continue  # an in-memory object: check_objects says what is wrong with it
        described = _describe(error)
        for key_path, message in described if isinstance(described, list) else [described]:
            problems.append(Problem(_dotted(key_path), message, _line_for(lines, key_path)))
    base = Path(base_dir).resolve()
    problems += _semantic_problems(data, base, lines)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise SpecError(sorted(unique, key=lambda p: (p.line or 0)), shown)
    return _build(data, text, base, path, lines)


def _line_for(lines: dict, path: tuple) -> int | None:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _semantic_problems(data: dict, base: Path, lines: dict) -> list[Problem]:
    """The rules a schema cannot say. Each part is checked on its own, so that a part
    with schema errors (wrong types) does not hide the problems of the others."""
    problems: list[Problem] = []

    def add(path: tuple, message: str) -> None:
        problems.append(Problem(_dotted(path), message, _line_for(lines, path)))

    for check in (_check_numbers, _check_model, _check_inputs, _check_values, _check_methods, _check_report,
                  _check_execution, check_objects):
        try:
            check(data, base, add)
        except (KeyError, TypeError, AttributeError, ValueError):
            pass  # this part has schema errors, already reported
    return problems


def _check_numbers(data: dict, base: Path, add) -> None:
    """Every number in a spec is finite (``.nan``, ``.inf`` pass a schema's bounds)."""
    found = 0
    stack = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found += 1
            if found <= 5:
                add(path, f"expected a finite number, got {value}")
        elif isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(value))))
    if found > 5:
        add((), f"and {found - 5} more numbers that are not finite")


def _point_shape(value, path: tuple) -> tuple[tuple[int, ...], tuple, str | None]:
    """(shape, path, problem) of one point: a number or a nested list of numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        return (), path, f"expected a number, got {_show(value)}"
    if not isinstance(value, list):
        return (), path, None
    if not value:
        return (), path, "expected a number or a list of numbers, got an empty list"
    shapes = []
    for i, item in enumerate(value):
        shape, where, problem = _point_shape(item, path + (i,))
        if problem:
            return shape, where, problem
        if shapes and shape != shapes[0]:
            return shape, where, f"expected the shape {list(shapes[0])} of the first entry, got {list(shape)}"
        shapes.append(shape)
    return (len(value),) + shapes[0], path, None


def _check_values(data: dict, base: Path, add) -> None:
    """Inline points are numbers (not text, not true/false), every point of one shape."""
    values = data["inputs"]["points"]["values"]
    if not isinstance(values, list):
        return
    if any(isinstance(v, dict) for v in values):  # by input name: checked against the model's inputs
        for i, point in enumerate(values):
            if not isinstance(point, dict):
                add(("inputs", "points", "values", i), f"expected a mapping of input name to value like point 0, "
                                                       f"got {_show(point)}")
                return
            if not point:
                add(("inputs", "points", "values", i), "expected a mapping of input name to value, got {}")
                return
        return
    first = None
    for i, point in enumerate(values):
        shape, where, problem = _point_shape(point, ("inputs", "points", "values", i))
        if problem is None and first is not None and shape != first:
            problem = f"expected a point of the first point's shape {list(first)}, got {list(shape)}"
        if problem:
            add(where, problem)
            return
        first = shape if first is None else first


def _check_model(data: dict, base: Path, add) -> None:
    model = data["model"]
    sources = [k for k in ("keras", "saved_model", "callable") if k in model]
    if len(sources) != 1:
        add(("model",), "give exactly one of keras, saved_model, callable" + (f" (got {', '.join(sources)})" if sources else ""))
    for key in ("signature", "input_key", "output_key"):
        if key in model and "saved_model" not in model:
            add(("model", key), "only applies to model.saved_model")
    for key in ("batched", "dtype"):
        if key in model and "callable" not in model:
            add(("model", key), "only applies to model.callable (Keras and SavedModel models are batched)")
    if "keras" in model and not isinstance(model["keras"], InMemory):
        p = base / model["keras"]
        if not p.is_file():
            add(("model", "keras"), f"file not found: {p}")
        elif p.suffix not in (".keras", ".h5"):
            add(("model", "keras"), f"expected a .keras file, got {p.name}")
    if "saved_model" in model and not (base / model["saved_model"]).is_dir():
        add(("model", "saved_model"), f"directory not found: {base / model['saved_model']}")
    if "callable" in model and not isinstance(model["callable"], InMemory):
        ref = model["callable"]
        file_part, sep, name = ref.rpartition(":")
        if not sep or not file_part or not name.isidentifier():
            add(("model", "callable"), f'expected "FILE.py:NAME" or "package.module:NAME", got "{ref}"')
        elif file_part.endswith(".py") and not (base / file_part).is_file():
            add(("model", "callable"), f"file not found: {base / file_part}")
    onames = model.get("output_names")
    if onames and len(set(onames)) != len(onames):
        add(("model", "output_names"), "names must be unique")


def _check_inputs(data: dict, base: Path, add) -> None:
    inputs = data["inputs"]
    pts = inputs["points"]
    kinds = [k for k in ("values", "csv", "npy", "npz", "sample") if k in pts]
    if len(kinds) != 1:
        add(("inputs", "points"), "give exactly one of values, csv, npy, npz, sample" + (f" (got {', '.join(kinds)})" if kinds else ""))
    for key in ("csv", "npy", "npz"):
        if key in pts and not (base / pts[key]).is_file():
            add(("inputs", "points", key), f"file not found: {base / pts[key]}")
    names = inputs.get("names")
    if "sample" in pts:
        where = ("inputs", "points", "sample", "distributions")
        dists = pts["sample"]["distributions"]
        if not names:
            add(("inputs", "names"), "required with inputs.points.sample (the sample needs to know the inputs)")
        else:
            missing = [n for n in names if n not in dists and n.split("[", 1)[0] not in dists]
            if missing and "default" not in dists:
                add(where, f"no distribution for {', '.join(missing)} (add them or a 'default')")
        _check_distributions(dists, names, where, add)
        if "distributions" in inputs:
            add(("inputs", "distributions"), "a sample's distributions are those in inputs.points.sample.distributions; "
                                             "give them there only (inputs.distributions is for points given as "
                                             "values, csv, npy or npz)")
        budget = data.get("execution", {}).get("memory_budget")
        n, width = pts["sample"]["n"], len(names or ())
        if budget is not None and width and isinstance(n, int):
            budget, need = parse_size(budget), n * width * 8
            if need > budget:
                add(("inputs", "points", "sample", "n"),
                    f"{n:,} points of {width} inputs take {format_bytes(need)}, more than the whole memory budget "
                    f"(execution.memory_budget: {format_bytes(budget)})")
    elif isinstance(inputs.get("distributions"), dict):
        _check_distributions(inputs["distributions"], names, ("inputs", "distributions"), add)
    if names and len(set(names)) != len(names):
        add(("inputs", "names"), "names must be unique")
    fixed = inputs.get("fixed") or []
    if len(set(fixed)) != len(fixed):
        add(("inputs", "fixed"), "names must be unique")
    for group, members in (inputs.get("groups") or {}).items():
        if len(set(members)) != len(members):
            add(("inputs", "groups", group), "members must be unique")


def _check_distributions(dists: dict, names: list[str] | None, where: tuple, add) -> None:
    """Each distribution is one kind with valid numbers, named by an input, its tensor or
    ``default`` (names unknown without inputs.names: the inputs stage checks them then)."""
    if names:
        tensors = {n.split("[", 1)[0] for n in names}  # numeric covers numeric[0], numeric[1], ...
        for key in dists:
            if key != "default" and key not in names and key not in tensors:
                hint = difflib.get_close_matches(key, names, n=1)
                add(where + (key,), "not an input name" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    for key, dist in dists.items():
        if not isinstance(dist, dict):
            continue  # a schema error
        if len(dist) != 1:
            add(where + (key,), f"give exactly one of {', '.join(KINDS)}")
            continue
        (kind, params), = dist.items()
        if kind in KINDS and isinstance(params, list) and len(params) == len(KINDS[kind]) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in params):
            message = problem(kind, params)
            if message:
                add(where + (key, kind), message)


def _check_methods(data: dict, base: Path, add) -> None:
    methods = data["methods"]
    onames = data.get("model", {}).get("output_names")
    if not any(k in methods for k in ("jacobian", "rows", "finite_difference")):
        add(("methods",), "request at least one of jacobian, rows, finite_difference")
    found = (methods.get("discrete") or {}).get("inputs") or []
    if len(set(found)) != len(found):
        add(("methods", "discrete", "inputs"), "names must be unique")
    if "rows" in methods and onames:
        for i, out in enumerate(methods["rows"]["outputs"]):
            if isinstance(out, str) and out not in onames:
                hint = difflib.get_close_matches(out, onames, n=1)
                add(("methods", "rows", "outputs", i),
                    f"'{out}' is not in model.output_names" + (f" (did you mean '{hint[0]}'?)" if hint else ""))


def _check_report(data: dict, base: Path, add) -> None:
    templates = data.get("report", {}).get("templates")
    if isinstance(templates, str) and not (base / templates).is_dir():
        add(("report", "templates"), f"directory not found: {base / templates}")


def _check_execution(data: dict, base: Path, add) -> None:
    budget = data.get("execution", {}).get("memory_budget")
    if isinstance(budget, str):
        try:
            parse_size(budget)
        except ValueError:
            add(("execution", "memory_budget"), f'expected a size such as 4GiB or 512MiB, got "{budget}"')


def _mlflow(value) -> dict | None:
    """report.mlflow as settings: a mapping (``true`` is an empty one), None when off."""
    if value is False or value is None:
        return None
    return {} if value is True else {k: dict(v) if k == "tags" else v for k, v in value.items()}


def _resolve_callable(ref: str, base: Path) -> str:
    file_part, _, name = ref.rpartition(":")
    if file_part.endswith(".py"):
        return f"{(base / file_part).resolve()}:{name}"
    return ref


def _build(data: dict, text: str, base: Path, path: Path | None, lines: dict) -> Spec:
    model = data["model"]
    kind = next(k for k in ("keras", "saved_model", "callable") if k in model)
    if isinstance(model[kind], InMemory):  # a keras.Model or a callable given to run() in a mapping
        target = str(model[kind])
    else:
        target = _resolve_callable(model[kind], base) if kind == "callable" else str((base / model[kind]).resolve())
    model_spec = ModelSpec(
        kind=kind,
        target=target,
        batched=bool(model.get("batched", kind != "callable")),
        dtype=model.get("dtype", "float64" if kind == "callable" else None),
        signature=model.get("signature"),
        input_key=model.get("input_key"),
        output_key=model.get("output_key"),
        output_names=tuple(model["output_names"]) if "output_names" in model else None,
        output_units=dict(model.get("output_units") or {}),
        obj=unwrap(model[kind]) if isinstance(model[kind], InMemory) else None,
    )
    pts = data["inputs"]["points"]
    pkind = next(k for k in ("values", "csv", "npy", "npz", "sample") if k in pts)
    if pkind == "sample":
        s = pts["sample"]
        dists = {k: from_json(v) for k, v in s["distributions"].items()}
        points = PointsSpec(kind="sample", n=s["n"], seed=s.get("seed", 0), distributions=dists,
                            method=s.get("method", "random"))
    else:
        # given points: inputs.distributions declares what they were drawn from
        dists = {k: from_json(v) for k, v in (data["inputs"].get("distributions") or {}).items()}
        if pkind == "values":
            points = PointsSpec(kind="values", values=unwrap(pts["values"]))
        else:
            points = PointsSpec(kind=pkind, path=(base / pts[pkind]).resolve())
    methods = data["methods"]
    jac = methods.get("jacobian", False)
    fd = methods.get("finite_difference", False)
    report = data.get("report", {})
    execution = data.get("execution", {})
    budget = execution.get("memory_budget")
    names = data["inputs"].get("names")
    return Spec(
        path=path,
        base_dir=base,
        raw=data,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=data.get("title", "Sensitivity report"),
        description=data.get("description", ""),
        model=model_spec,
        input_names=tuple(names) if names else None,
        fixed=tuple(data["inputs"].get("fixed", ())),
        groups={g: tuple(m) for g, m in (data["inputs"].get("groups") or {}).items()},
        axes={k: dict(v) for k, v in (data["inputs"].get("axes") or {}).items()},
        points=points,
        jacobian_mode=None if jac is False else (jac or {}).get("mode", "auto"),
        rows_outputs=tuple(methods["rows"]["outputs"]) if "rows" in methods else None,
        discrete=tuple(methods["discrete"]["inputs"]) if "discrete" in methods else (),
        fd_scheme=None if fd is False else (fd or {}).get("scheme", "central"),
        fd_step=(fd or {}).get("step", "auto") if fd is not False else "auto",
        measures=tuple(data.get("sensitivity", {}).get("measures", MEASURES)),
        confidence=float(data.get("sensitivity", {}).get("confidence", 0.95)),
        report_dir=(base / report.get("dir", "report")).resolve(),
        plotlyjs=report.get("plotlyjs", "inline"),
        report_templates=(base / report["templates"]).resolve() if "templates" in report else None,
        mlflow=_mlflow(report.get("mlflow", False)),
        memory_budget=parse_size(budget) if budget is not None else None,
        timeout=float(execution["timeout"]) if "timeout" in execution else None,
        arrays=execution.get("arrays", "auto"),
        compress_arrays=execution.get("compress_arrays", False),
        xla=execution.get("xla", False),
        checks=default_checks(data.get("checks"), base),
        engine=execution.get("engine", "local"),
        ray=dict(execution.get("ray", {})),
        lines=lines,
        input_units=dict(data["inputs"].get("units") or {}),
        distributions=dists,
    )
