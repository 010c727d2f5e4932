package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// TestStdlibDataModules checks the stdlib modules backed by C libraries that
// python/build.sh links statically into python.wasm (sqlite3, bz2, lzma,
// zlib): each imports and works on data in the session's workspace.
func TestStdlibDataModules(t *testing.T) {
	p := launch(t, 1)
	ws := t.TempDir()
	id := newSession(t, p, sdk.SessionSpec{Workspace: ws})

	expectOK(t, p, id, "import sqlite3, bz2, lzma, zlib; print(sqlite3.sqlite_version)", "3.46.1\n")

	// sqlite3 on a file in the workspace: WAL is compiled out for WASI, so
	// the default rollback journal must work there.
	expectOK(t, p, id, `
import sqlite3
con = sqlite3.connect('/workspace/t.db')
con.execute('create table t (k text, v real)')
con.executemany('insert into t values (?, ?)', [('a', 1.5), ('b', 2.5), ('a', 3.0)])
con.commit()
print(con.execute('select k, sum(v) from t group by k order by k').fetchall())
print(con.execute("select json_extract('{\"x\": [1, 2]}', '$.x[1]'), round(sqrt(16))").fetchone())
con.close()
`, "[('a', 4.5), ('b', 2.5)]\n(2, 4.0)\n")
	if st, err := os.Stat(filepath.Join(ws, "t.db")); err != nil || st.Size() == 0 {
		t.Fatalf("t.db not written to the workspace: %v", err)
	}

	// Round trips through each compressor, and their file formats.
	expectOK(t, p, id, `
import bz2, lzma, zlib
data = b'mcpruntime ' * 1000
for mod in (bz2, lzma, zlib):
    c = mod.compress(data)
    assert mod.decompress(c) == data and len(c) < len(data) // 10, mod.__name__
with bz2.open('/workspace/d.bz2', 'wb') as f: f.write(data)
with lzma.open('/workspace/d.xz', 'wb') as f: f.write(data)
print(bz2.open('/workspace/d.bz2').read() == data, lzma.open('/workspace/d.xz').read() == data)
`, "True True\n")
	xz, err := os.ReadFile(filepath.Join(ws, "d.xz"))
	if err != nil || !strings.HasPrefix(string(xz), "\xfd7zXZ\x00") {
		t.Fatalf("d.xz is not an xz file: %v %.8q", err, xz)
	}
}
