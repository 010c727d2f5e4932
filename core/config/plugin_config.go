package config

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// PluginConfig decodes the sandbox's `config { ... }` block against the spec
// its plugin publishes, applies the declared defaults and returns the JSON
// object the plugin's Configure receives. Unknown or mistyped attributes are
// reported at their position in runtime.hcl.
func (c *Config) PluginConfig(s *Sandbox, spec *sdk.ConfigSpec) (json.RawMessage, error) {
	obj := hcldec.ObjectSpec{}
	kinds := map[string]string{}
	for _, a := range spec.Attributes {
		t, err := ctyType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("plugin %s declares attribute %q: %w", s.Name, a.Name, err)
		}
		kinds[a.Name] = a.Type
		var sp hcldec.Spec = &hcldec.AttrSpec{Name: a.Name, Type: t, Required: a.Required}
		if a.Default != nil {
			dv, err := defaultValue(a.Default, t)
			if err != nil {
				return nil, fmt.Errorf("plugin %s: default of %q: %w", s.Name, a.Name, err)
			}
			sp = &hcldec.DefaultSpec{Primary: sp, Default: &hcldec.LiteralSpec{Value: dv}}
		}
		obj[a.Name] = sp
	}
	body := s.body
	if body == nil {
		body = hcl.EmptyBody()
	}
	val, diags := hcldec.Decode(body, obj, evalContext())
	if diags.HasErrors() {
		return nil, diagError(diags, c.src)
	}
	for name, kind := range kinds {
		v := val.GetAttr(name)
		if v.IsNull() || (kind != sdk.TypeDuration && kind != sdk.TypeSize) {
			continue
		}
		rng := hcldec.SourceRange(body, obj[name])
		var err error
		if kind == sdk.TypeDuration {
			_, err = time.ParseDuration(v.AsString())
		} else {
			_, err = sdk.ParseSize(v.AsString())
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + kind,
				Detail: fmt.Sprintf("%s: %v", name, err), Subject: rng.Ptr()})
		}
	}
	if err := diagError(diags, c.src); err != nil {
		return nil, err
	}
	js, err := ctyjson.Marshal(val, val.Type())
	if err != nil {
		return nil, fmt.Errorf("encode plugin config: %w", err)
	}
	return js, nil
}

func ctyType(t string) (cty.Type, error) {
	switch t {
	case sdk.TypeString, sdk.TypeDuration, sdk.TypeSize:
		return cty.String, nil
	case sdk.TypeNumber:
		return cty.Number, nil
	case sdk.TypeBool:
		return cty.Bool, nil
	case sdk.TypeStringList:
		return cty.List(cty.String), nil
	case sdk.TypeStringMap:
		return cty.Map(cty.String), nil
	}
	return cty.NilType, fmt.Errorf("unknown attribute type %q", t)
}

func defaultValue(v any, t cty.Type) (cty.Value, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(js, t)
}
