# Runs inside a sandbox: describes a code action with Python's own ast.
import ast, json
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
keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
print(json.dumps({"functions": list(defined.values()), "calls": calls, "module": ast.unparse(ast.Module(body=keep, type_ignores=[]))}))
