# mcpruntime configuration. Paths are relative to this file.

runtime {
  backend   = "wasm"         # the sandbox block that serves by default
  workspace = "./workspace"  # files persist here across executions and sessions
  # plugin_dir defaults to plugins/ beside the mcpruntime executable (bin/plugins)
}

# CPython compiled to WASI, run by wasmtime (engine = "wazero" for the pure-Go engine):
# no daemon, no root, no network.
sandbox "wasm" {
  pool {
    size = 2
  }
  limits {
    timeout = "30s"
    memory  = "512MiB"
    output  = "1MiB"
  }
}

# Containers through containerd (make -C plugins/opensandbox deps starts one).
sandbox "opensandbox" {
  pool {
    size = 2
  }
  limits {
    timeout = "30s"
    memory  = "512MiB"
    output  = "1MiB"
    pids    = 128
  }
}

# KVM microVMs (QEMU under software emulation where KVM is unusable).
sandbox "microvm" {
  limits {
    timeout = "60s"
    memory  = "512MiB"  # numpy (and so pandas, matplotlib) needs more than 256MiB of address space
    output  = "1MiB"
  }
}

# The host's python3 in Linux namespaces: the example third-party plugin.
sandbox "hostpython" {
  limits {
    timeout = "30s"
    memory  = "1GiB"
  }
}

llm {
  base_url = env("OPENAI_BASE_URL")
  api_key  = env("OPENAI_API_KEY")
  model    = "gpt-4o-mini"
}

skills {
  dir       = "./skills"
  auto_save = true
}

server {
  listen = "127.0.0.1:7878"
  token  = env("MCPRUNTIME_TOKEN")
}
