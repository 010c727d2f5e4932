package agent

import (
	"regexp"
	"strings"
)

// fence matches a fenced block with an optional language label.
var fence = regexp.MustCompile("(?s)```([A-Za-z0-9_+.-]*)[ \\t]*\\r?\\n(.*?)```")

// pythonStart is the shape of a first statement that only Python code
// has: an unlabelled block starting like this runs; prose, shell commands
// or program output in a bare block do not.
var pythonStart = regexp.MustCompile(`^(import [A-Za-z_]|from [A-Za-z_.]+ import |def [A-Za-z_]\w*\(|async def |class [A-Za-z_]\w*[:(]|print\(|for .+ in .+:|while .+:|if .+:|with .+:|try:|return\b|@[A-Za-z_]|[A-Za-z_][\w.]*(\[[^\]]*\])? *(=|\+=|-=|\*=|/=|:[^=]+=) *\S|[A-Za-z_][\w.]*\(.*\)$)`)

// parsed is what a reply holds: the code to run, and how many python
// blocks it had with nothing in them.
type parsed struct {
	code  []string
	empty int
}

// parseReply sorts a reply's fenced blocks: python/py/python3 blocks run;
// an unlabelled block runs when it looks like Python; empty blocks of
// either kind are counted (the model is told, instead of its reply being
// taken as the answer); blocks in other languages are text.
func parseReply(reply string) parsed {
	var p parsed
	for _, m := range fence.FindAllStringSubmatch(reply, -1) {
		lang, body := strings.ToLower(m[1]), m[2]
		switch lang {
		case "python", "py", "python3":
		case "":
			if strings.TrimSpace(body) != "" && !looksLikePython(body) {
				continue
			}
		default:
			continue
		}
		if strings.TrimSpace(body) == "" {
			p.empty++
			continue
		}
		p.code = append(p.code, body)
	}
	return p
}

// CodeBlocks returns the blocks of a reply that run, in order.
func CodeBlocks(reply string) []string { return parseReply(reply).code }

// looksLikePython reports whether an unlabelled block's first statement
// (comments and blank lines skipped) is one that only Python code has.
func looksLikePython(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		return pythonStart.MatchString(line)
	}
	return false
}

// emptyBlockNotice is the corrective message for a reply whose only code
// blocks were empty: such a reply is neither code nor an answer.
const emptyBlockNotice = "Your reply contained an empty code block, so nothing ran and it is not taken as the final answer. " +
	"Put the code inside the block (```python ... ```), or, if you have the final answer, reply with plain text and no code block."
