//! Character devices in QEMU's syntax as xl's `serial` (and xend's) take them:
//! `pty`, `file:/path`, `tcp:host:port,server,nowait`, `udp:peer:port@bind:port`...
use crate::model::{CharDev, CharKind, DomainConfig};

/// The serial devices in list order with each at its port: `filler` (xl's `"none"`) in
/// the places no device has.
pub fn serial_list(c: &DomainConfig, filler: &str) -> Vec<String> {
    let ports = c.serial_ports();
    let mut by_port: Vec<(u32, String)> = c
        .serials
        .iter()
        .zip(ports)
        .map(|(s, p)| (p, write_chardev(s)))
        .collect();
    by_port.sort_by_key(|(p, _)| *p);
    let mut out = Vec::new();
    for (p, s) in by_port {
        // A port past any sane count is written next rather than after a long gap.
        while (out.len() as u64) < u64::from(p) && out.len() < 64 {
            out.push(filler.to_string());
        }
        out.push(s);
    }
    out
}

/// Parse a character device in QEMU's syntax as xl's `serial` takes it.
/// `None` for `none` (no device).
pub fn parse_chardev(s: &str) -> Result<Option<CharDev>, String> {
    let s = s.trim();
    let mut dev = CharDev::default();
    let (head, opts) = match s.split_once(',') {
        Some((h, o)) => (h, o),
        None => (s, ""),
    };
    let simple = |k| {
        Ok(Some(CharDev {
            kind: k,
            ..Default::default()
        }))
    };
    match head {
        "none" | "" => return Ok(None),
        "pty" => return simple(CharKind::Pty),
        "null" => return simple(CharKind::Null),
        "stdio" => return simple(CharKind::Stdio),
        "vc" => return simple(CharKind::Vc),
        _ => {}
    }
    let (kind, arg) = head.split_once(':').unwrap_or(("", head));
    match kind {
        "file" => dev.kind = CharKind::File,
        "pipe" => dev.kind = CharKind::Pipe,
        "unix" => dev.kind = CharKind::Unix,
        "tcp" => dev.kind = CharKind::Tcp,
        "telnet" => {
            dev.kind = CharKind::Tcp;
            dev.telnet = true;
        }
        "udp" => dev.kind = CharKind::Udp,
        "" if arg.starts_with('/') => dev.kind = CharKind::Dev,
        _ => {
            return Err(format!(
                "`{s}` is not a character device (pty, file:PATH, tcp:HOST:PORT...)"
            ));
        }
    }
    let host_port = |a: &str| -> Result<(Option<String>, Option<String>), String> {
        let (host, port) = a
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: expected HOST:PORT"))?;
        Ok((
            Some(host.to_string()).filter(|h| !h.is_empty()),
            Some(port.to_string()),
        ))
    };
    match dev.kind {
        // udp:PEER:PORT[@BIND:PORT]: QEMU sends to the peer from the bind address.
        CharKind::Udp => {
            let (peer, bind) = match arg.split_once('@') {
                Some((p, b)) => (p, Some(b)),
                None => (arg, None),
            };
            (dev.host, dev.service) = host_port(peer)?;
            if let Some(b) = bind {
                (dev.bind_host, dev.bind_service) = host_port(b)?;
            }
        }
        CharKind::Tcp => (dev.host, dev.service) = host_port(arg)?,
        _ => dev.path = Some(arg.to_string()),
    }
    for o in opts.split(',').map(str::trim) {
        match o {
            "server" => dev.listen = true,
            "nowait" | "" => {}
            other => return Err(format!("`{s}`: unknown option `{other}`")),
        }
    }
    Ok(Some(dev))
}

/// Write a character device in QEMU's syntax (the inverse of [`parse_chardev`]).
pub fn write_chardev(d: &CharDev) -> String {
    let path = d.path.as_deref().unwrap_or("");
    let server = if d.listen { ",server,nowait" } else { "" };
    match d.kind {
        CharKind::Pty | CharKind::Null | CharKind::Stdio | CharKind::Vc => d.kind.as_str().into(),
        CharKind::Dev => path.to_string(),
        CharKind::File | CharKind::Pipe => format!("{}:{path}", d.kind.as_str()),
        CharKind::Unix => format!("unix:{path}{server}"),
        CharKind::Tcp | CharKind::Udp => {
            let scheme = if d.telnet { "telnet" } else { d.kind.as_str() };
            let host = d.host.as_deref().unwrap_or("");
            let port = d.service.as_deref().unwrap_or("");
            let bind = match (d.kind, &d.bind_host, &d.bind_service) {
                (CharKind::Udp, None, None) | (CharKind::Tcp, _, _) => String::new(),
                (_, h, p) => format!(
                    "@{}:{}",
                    h.as_deref().unwrap_or(""),
                    p.as_deref().unwrap_or("")
                ),
            };
            format!("{scheme}:{host}:{port}{bind}{server}")
        }
    }
}
