package server

// decodeExecRequest decodes the body of the execute endpoints strictly
// (see decodeObject): code is required and at most maxCode bytes (413
// beyond, before anything runs or is recorded), timeout_ms not negative.
func decodeExecRequest(raw []byte, maxCode int64) (ExecRequest, error) {
	var req ExecRequest
	err := decodeObject(raw, []field{
		{name: "code", dst: &req.Code, required: true},
		{name: "backend", dst: &req.Backend},
		{name: "session", dst: &req.Session},
		{name: "timeout_ms", dst: &req.TimeoutMs},
		{name: "create", dst: &req.Create},
		{name: "task", dst: &req.Task},
	})
	switch {
	case err != nil:
		return ExecRequest{}, err
	case int64(len(req.Code)) > maxCode:
		return ExecRequest{}, tooLarge("code is %d bytes; the limit is %s (server.max_code)", len(req.Code), formatSize(maxCode))
	case req.TimeoutMs < 0:
		return ExecRequest{}, badRequest("field \"timeout_ms\" must not be negative")
	}
	return req, nil
}
