package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal reader and writer of the WebAssembly binary format: just what a
// snapshot needs (the global, export, memory and data sections), every
// other section is copied byte for byte.

const (
	secGlobal    = 6
	secExport    = 7
	secMemory    = 5
	secStart     = 8
	secData      = 11
	secDataCount = 12
	secImport    = 2
)

// Value types of globals.
const (
	valI32 = 0x7f
	valI64 = 0x7e
	valF32 = 0x7d
	valF64 = 0x7c
)

type section struct {
	id   byte
	body []byte
}

// wasmGlobal is a global defined by the module (imported ones are not
// counted: python.wasm imports none).
type wasmGlobal struct {
	typ     byte
	mutable bool
	init    []byte // constant expression, with its end opcode
}

type wasmModule struct {
	sections []section
}

func parseModule(b []byte) (*wasmModule, error) {
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("\x00asm")) || binary.LittleEndian.Uint32(b[4:8]) != 1 {
		return nil, errors.New("not a WebAssembly module (version 1)")
	}
	m := &wasmModule{}
	r := b[8:]
	for len(r) > 0 {
		id := r[0]
		n, k, err := uleb(r[1:])
		if err != nil {
			return nil, fmt.Errorf("section header: %w", err)
		}
		start := 1 + k
		if uint64(len(r)-start) < n {
			return nil, fmt.Errorf("section %d: truncated", id)
		}
		m.sections = append(m.sections, section{id: id, body: r[start : start+int(n)]})
		r = r[start+int(n):]
	}
	return m, nil
}

func (m *wasmModule) encode() []byte {
	var out bytes.Buffer
	out.WriteString("\x00asm\x01\x00\x00\x00")
	for _, s := range m.sections {
		out.WriteByte(s.id)
		out.Write(putULEB(nil, uint64(len(s.body))))
		out.Write(s.body)
	}
	return out.Bytes()
}

func (m *wasmModule) find(id byte) int {
	for i, s := range m.sections {
		if s.id == id {
			return i
		}
	}
	return -1
}

// insert puts a section in its place in the standard order.
func (m *wasmModule) insert(s section) {
	order := func(id byte) int {
		if id == secDataCount { // between element (9) and code (10)
			return 95
		}
		if id == 0 {
			return 1000
		}
		return int(id) * 10
	}
	for i, o := range m.sections {
		if o.id != 0 && order(o.id) > order(s.id) {
			m.sections = append(m.sections[:i], append([]section{s}, m.sections[i:]...)...)
			return
		}
	}
	m.sections = append(m.sections, s)
}

func (m *wasmModule) globals() ([]wasmGlobal, error) {
	i := m.find(secGlobal)
	if i < 0 {
		return nil, nil
	}
	r := m.sections[i].body
	n, k, err := uleb(r)
	if err != nil {
		return nil, err
	}
	r = r[k:]
	gs := make([]wasmGlobal, 0, n)
	for j := uint64(0); j < n; j++ {
		if len(r) < 2 {
			return nil, errors.New("global section truncated")
		}
		g := wasmGlobal{typ: r[0], mutable: r[1] == 1}
		l, err := constExprLen(r[2:])
		if err != nil {
			return nil, fmt.Errorf("global %d: %w", j, err)
		}
		g.init = r[2 : 2+l]
		r = r[2+l:]
		gs = append(gs, g)
	}
	return gs, nil
}

func (m *wasmModule) setGlobals(gs []wasmGlobal) {
	body := putULEB(nil, uint64(len(gs)))
	for _, g := range gs {
		mut := byte(0)
		if g.mutable {
			mut = 1
		}
		body = append(body, g.typ, mut)
		body = append(body, g.init...)
	}
	m.sections[m.find(secGlobal)].body = body
}

// importedGlobals counts the module's imported globals (their indices come
// first); a snapshot of a module importing globals is not supported.
func (m *wasmModule) importedGlobals() (int, error) {
	i := m.find(secImport)
	if i < 0 {
		return 0, nil
	}
	r := m.sections[i].body
	n, k, err := uleb(r)
	if err != nil {
		return 0, err
	}
	r = r[k:]
	count := 0
	for j := uint64(0); j < n; j++ {
		for f := 0; f < 2; f++ { // module name, field name
			l, k, err := uleb(r)
			if err != nil || uint64(len(r)-k) < l {
				return 0, errors.New("import section truncated")
			}
			r = r[k+int(l):]
		}
		if len(r) == 0 {
			return 0, errors.New("import section truncated")
		}
		kind := r[0]
		r = r[1:]
		switch kind {
		case 0: // func: type index
			_, k, err = uleb(r)
			r = r[k:]
		case 1: // table: reftype + limits
			r = r[1:]
			r, err = skipLimits(r)
		case 2: // memory: limits
			r, err = skipLimits(r)
		case 3: // global
			count++
			r = r[2:]
		default:
			return 0, fmt.Errorf("import kind %d", kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

func skipLimits(r []byte) ([]byte, error) {
	if len(r) == 0 {
		return nil, errors.New("limits truncated")
	}
	flag := r[0]
	r = r[1:]
	for range 1 + int(flag&1) {
		_, k, err := uleb(r)
		if err != nil {
			return nil, err
		}
		r = r[k:]
	}
	return r, nil
}

type wasmExport struct {
	name string
	kind byte
	idx  uint32
}

func (m *wasmModule) exports() ([]wasmExport, error) {
	i := m.find(secExport)
	if i < 0 {
		return nil, nil
	}
	r := m.sections[i].body
	n, k, err := uleb(r)
	if err != nil {
		return nil, err
	}
	r = r[k:]
	var es []wasmExport
	for j := uint64(0); j < n; j++ {
		l, k, err := uleb(r)
		if err != nil || uint64(len(r)-k) < l+1 {
			return nil, errors.New("export section truncated")
		}
		e := wasmExport{name: string(r[k : k+int(l)]), kind: r[k+int(l)]}
		r = r[k+int(l)+1:]
		idx, k2, err := uleb(r)
		if err != nil {
			return nil, err
		}
		e.idx = uint32(idx)
		r = r[k2:]
		es = append(es, e)
	}
	return es, nil
}

func (m *wasmModule) setExports(es []wasmExport) {
	body := putULEB(nil, uint64(len(es)))
	for _, e := range es {
		body = putULEB(body, uint64(len(e.name)))
		body = append(body, e.name...)
		body = append(body, e.kind)
		body = putULEB(body, uint64(e.idx))
	}
	if i := m.find(secExport); i >= 0 {
		m.sections[i].body = body
	} else {
		m.insert(section{id: secExport, body: body})
	}
}

// setMemoryMin sets the minimum size (pages) of the module's one memory,
// keeping its maximum.
func (m *wasmModule) setMemoryMin(pages uint32) error {
	i := m.find(secMemory)
	if i < 0 {
		return errors.New("no memory section (imported memory is not supported)")
	}
	r := m.sections[i].body
	n, k, err := uleb(r)
	if err != nil || n != 1 {
		return fmt.Errorf("want one memory, have %d", n)
	}
	r = r[k:]
	flag := r[0]
	if flag&^1 != 0 {
		return fmt.Errorf("memory flags %#x (shared or 64-bit memory) not supported", flag)
	}
	_, k, err = uleb(r[1:])
	if err != nil {
		return err
	}
	body := []byte{1, flag}
	body = putULEB(body, uint64(pages))
	body = append(body, r[1+k:]...)
	m.sections[i].body = body
	return nil
}

// memoryMax is the declared maximum of the memory in pages (0: none).
func (m *wasmModule) memoryMax() uint32 {
	i := m.find(secMemory)
	if i < 0 {
		return 0
	}
	r := m.sections[i].body[1:]
	if r[0]&1 == 0 {
		return 0
	}
	_, k, err := uleb(r[1:])
	if err != nil {
		return 0
	}
	v, _, err := uleb(r[1+k:])
	if err != nil {
		return 0
	}
	return uint32(v)
}

// dataSegment is an active segment for memory 0 at a constant offset.
type dataSegment struct {
	offset uint32
	data   []byte
}

// setData replaces all data segments (and the data count, if present).
func (m *wasmModule) setData(segs []dataSegment) error {
	body := putULEB(nil, uint64(len(segs)))
	for _, s := range segs {
		body = append(body, 0, 0x41) // active, memory 0; i32.const
		body = putSLEB(body, int64(int32(s.offset)))
		body = append(body, 0x0b)
		body = putULEB(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	if i := m.find(secData); i >= 0 {
		m.sections[i].body = body
	} else {
		m.insert(section{id: secData, body: body})
	}
	if i := m.find(secDataCount); i >= 0 {
		m.sections[i].body = putULEB(nil, uint64(len(segs)))
	}
	return nil
}

// constExprLen is the length of a constant expression, end opcode included.
func constExprLen(r []byte) (int, error) {
	i := 0
	for i < len(r) {
		op := r[i]
		i++
		switch op {
		case 0x0b:
			return i, nil
		case 0x41, 0x42, 0x23: // i32.const, i64.const, global.get
			_, k, err := uleb(r[i:]) // same length as the signed form
			if err != nil {
				return 0, err
			}
			i += k
		case 0x43:
			i += 4
		case 0x44:
			i += 8
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended const arithmetic
		default:
			return 0, fmt.Errorf("constant expression opcode %#x not supported", op)
		}
	}
	return 0, errors.New("constant expression without end")
}

// constExpr encodes value (the global's bits) as a constant of type typ.
func constExpr(typ byte, bits uint64) ([]byte, error) {
	switch typ {
	case valI32:
		return append(putSLEB([]byte{0x41}, int64(int32(uint32(bits)))), 0x0b), nil
	case valI64:
		return append(putSLEB([]byte{0x42}, int64(bits)), 0x0b), nil
	case valF32:
		b := binary.LittleEndian.AppendUint32([]byte{0x43}, uint32(bits))
		return append(b, 0x0b), nil
	case valF64:
		b := binary.LittleEndian.AppendUint64([]byte{0x44}, bits)
		return append(b, 0x0b), nil
	}
	return nil, fmt.Errorf("global of type %#x not supported", typ)
}

func uleb(b []byte) (uint64, int, error) {
	var v uint64
	var shift uint
	for i, c := range b {
		if i == 10 {
			break
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
		shift += 7
	}
	return 0, 0, errors.New("bad LEB128")
}

func putULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func putSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
