package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

func pluginsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "List and check sandbox plugins"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the plugins in plugin_dir and those runtime.hcl names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			found, err := pluginhost.Discover(cfg.PluginDir)
			if err != nil {
				return err
			}
			for name, sb := range cfg.Sandboxes {
				if sb.Plugin != "" {
					found = append(found, pluginhost.Found{Name: name, Path: sb.Plugin})
				}
			}
			type row struct {
				pluginStatus
				Default bool `json:"default"`
			}
			rows := []row{}
			for _, st := range checkPlugins(cmd.Context(), found) {
				rows = append(rows, row{pluginStatus: st, Default: st.Name == cfg.Backend})
			}
			var broken []string
			for _, r := range rows {
				if r.Broken() {
					broken = append(broken, r.Name)
				}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), rows)
			} else if len(rows) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no plugins in %s (run `make build`)\n", cfg.PluginDir)
			} else {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tPROTOCOL\tISOLATION\tSNAPSHOTS\tPATH")
				for _, r := range rows {
					name := r.Name
					if r.Default {
						name += " (default)"
					}
					if r.Info == nil {
						fmt.Fprintf(tw, "%s\tBROKEN\t-\t-\t-\t%s\n", name, r.Path)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%s\n", name, r.Info.Version, r.Protocol, r.Info.Capabilities.Isolation, r.Info.Capabilities.Snapshots, r.Path)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, r := range rows {
					if r.Broken() {
						fmt.Fprintf(cmd.OutOrStdout(), "\nbroken plugin %s (%s):\n  %s\n  fix: %s\n", r.Name, r.Path, indent(r.Error), r.Fix)
					}
				}
			}
			if len(broken) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d broken plugin(s): %s", len(broken), strings.Join(broken, ", "))}
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var pluginConfig string
	var checkJSON bool
	check := &cobra.Command{
		Use:   "check PATH",
		Short: "Run the conformance suite against a plugin executable",
		Long: `Run the sdk's conformance suite (the same one plugin authors run with
sandboxtest.Run) against the plugin at PATH and print a report. Exits 1 if
any check fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var opts []sandboxtest.Option
			if pluginConfig != "" {
				if !json.Valid([]byte(pluginConfig)) {
					return &exitError{code: exitUsage, err: fmt.Errorf("--plugin-config is not valid JSON")}
				}
				opts = append(opts, sandboxtest.WithConfig(pluginConfig))
			}
			opts = append(opts, sandboxtest.WithLogger(a.log()))
			progress := func(r sandboxtest.Result) {
				if checkJSON {
					return
				}
				switch {
				case r.Skipped:
					fmt.Fprintf(out, "SKIP  %-20s %s\n", r.Name, r.Error)
				case r.Passed:
					fmt.Fprintf(out, "PASS  %-20s %s (%s)\n", r.Name, r.Doc, r.Duration.Round(time.Millisecond))
				default:
					fmt.Fprintf(out, "FAIL  %-20s %s\n      %s\n", r.Name, r.Doc, r.Error)
				}
			}
			if !checkJSON {
				fmt.Fprintf(out, "conformance checks for %s\n", args[0])
			}
			results, err := sandboxtest.Report(cmd.Context(), args[0], progress, opts...)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("plugin %s: %w", args[0], err)}
			}
			var passed, failed, skipped int
			for _, r := range results {
				switch {
				case r.Skipped:
					skipped++
				case r.Passed:
					passed++
				default:
					failed++
				}
			}
			if checkJSON {
				printJSON(out, results)
			} else {
				fmt.Fprintf(out, "conformance: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
			}
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	check.Flags().StringVar(&pluginConfig, "plugin-config", "", "the plugin's config block as JSON")
	check.Flags().BoolVar(&checkJSON, "json", false, "print the results as JSON")
	cmd.AddCommand(list, check)
	return cmd
}
