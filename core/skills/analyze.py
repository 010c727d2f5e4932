# Runs inside a sandbox: describes a code action with Python's own ast and
# symtable: its top-level functions, the calls that used them, the module
# a skill would keep, and the names each kept function or class reads that
# nothing in that module binds (session globals, which make it unusable
# anywhere else).
import ast, builtins, json, symtable
src = json.loads(SOURCE_JSON)
tree = ast.parse(src)
defined = {}
for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        defined[node.name] = {
            "name": node.name,
            "args": [{"name": a.arg, "annotation": ast.unparse(a.annotation) if a.annotation else None} for a in node.args.args],
            "returns": ast.unparse(node.returns) if node.returns else None,
            "doc": ast.get_docstring(node) or "",
        }
calls = []
for stmt in tree.body:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        continue
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            types = []
            for a in node.args:
                try:
                    types.append(type(ast.literal_eval(a)).__name__)
                except Exception:
                    types.append(None)
            calls.append({"name": node.func.id, "arg_types": types})

def literal(node):
    # A module-level constant the functions may read: NAME = <literal>.
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        value = node.value
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        value = node.value
    else:
        return False
    try:
        ast.literal_eval(value)
    except Exception:
        return False
    return len(ast.unparse(node)) <= 2000

def names_of(node):
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets]
    return [node.target.id]

keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or literal(n)]
module = ast.Module(body=keep, type_ignores=[])
bound = set(dir(builtins)) | {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__"}
for n in keep:
    if isinstance(n, (ast.Import, ast.ImportFrom)):
        for a in n.names:
            bound.add((a.asname or a.name).split(".")[0])
    elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound.add(n.name)
    else:
        bound.update(names_of(n))

# The globals every function and class of the kept module reads (nested
# scopes included), by top-level definition.
unresolved = {}
def scan(table, top):
    for sym in table.get_symbols():
        if sym.is_referenced() and sym.is_global() and sym.get_name() not in bound:
            unresolved.setdefault(top, set()).add(sym.get_name())
    for child in table.get_children():
        scan(child, top)
modsrc = ast.unparse(module)
for child in symtable.symtable(modsrc, "<skill>", "exec").get_children():
    scan(child, child.get_name())
# Module-level statements kept (decorators, defaults, bases) read names too.
for sym in symtable.symtable(modsrc, "<skill>", "exec").get_symbols():
    if sym.is_referenced() and sym.get_name() not in bound:
        unresolved.setdefault("<module>", set()).add(sym.get_name())

def strip_docs(m):
    m = ast.parse(ast.unparse(m))
    for node in ast.walk(m):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(m)

print(json.dumps({"functions": list(defined.values()), "calls": calls, "module": modsrc,
                  "normalized": strip_docs(module),
                  "unresolved": {k: sorted(v) for k, v in unresolved.items()}}))
