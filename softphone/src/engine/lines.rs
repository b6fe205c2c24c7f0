//! Lines and their registration: opening each account's line, REGISTER and its answers,
//! failing over to the backup server, and registering again from a new address when the
//! network changes.

use super::*;

impl Engine {
    /// After a network change (the address towards a line's server is another one), each
    /// such line registers again from the new address at once.
    pub(super) fn check_network(&mut self, listen: SocketAddr) {
        if !listen.ip().is_unspecified() {
            return;
        }
        for i in 0..self.lines.len() {
            let transport = self.lines[i].peer.transport;
            let bound = self.ep.local_addr(transport).unwrap_or(listen);
            let now = advertised(bound, self.lines[i].peer.addr);
            if now.ip().is_unspecified() || now == self.lines[i].local {
                continue;
            }
            let a = self.lines[i].account.clone();
            self.lines[i].local = now;
            self.lines[i].reg = Registration::new(
                &a.number,
                (&a.server, a.port),
                (&a.user_id, &a.password),
                transport,
                now,
                a.registration_expiry,
            );
            self.lines[i].mwi = mwi::Mwi::default();
            if i == 0 {
                self.local = SocketAddr::new(now.ip(), self.local.port());
            }
            self.emit(Event::NetworkChanged {
                line: i + 1,
                address: now.to_string(),
            });
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }

    pub(super) async fn open_lines(&mut self, config: &Config) {
        for (i, a) in config.accounts.iter().enumerate() {
            let transport = match a.transport.as_str() {
                "tcp" => TransportKind::Tcp,
                "tls" => TransportKind::Tls,
                _ => TransportKind::Udp,
            };
            let local = self.ep.local_addr(transport).unwrap_or(self.local);
            let Some(addr) = tokio::net::lookup_host((a.server.as_str(), a.port))
                .await
                .ok()
                .and_then(|mut it| it.next())
            else {
                self.emit(Event::RegistrationFailed {
                    line: i + 1,
                    account: a.number.clone(),
                    status: 0,
                    reason: format!("{}: no address for this server", a.server),
                    retry_in: 0,
                });
                continue;
            };
            // Listening on every interface, the phone still names one address in its Contact,
            // Via and SDP: the one the system sends from towards the server (0.0.0.0 there
            // would mean "put me on hold" to the other side's SDP).
            let local = advertised(local, addr);
            if i == 0 {
                self.local = SocketAddr::new(local.ip(), self.local.port());
            }
            let mut servers = vec![addr];
            if !a.backup_server.is_empty() {
                match tokio::net::lookup_host((a.backup_server.as_str(), a.backup_port))
                    .await
                    .ok()
                    .and_then(|mut it| it.next())
                {
                    Some(b) => servers.push(b),
                    None => self.emit(Event::Error {
                        message: format!(
                            "line {}: {}: no address for the backup server",
                            i + 1,
                            a.backup_server
                        ),
                    }),
                }
            }
            self.lines.push(Line {
                servers,
                local,
                reg: Registration::new(
                    &a.number,
                    (&a.server, a.port),
                    (&a.user_id, &a.password),
                    transport,
                    local,
                    a.registration_expiry,
                ),
                account: a.clone(),
                peer: Peer::new(transport, addr),
                pending: None,
                mwi: mwi::Mwi::default(),
            });
        }
        self.emit(Event::Ready {
            lines: self.lines.len(),
            sip: self.local.to_string(),
        });
        for i in 0..self.lines.len() {
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }

    pub(super) fn send_register(&mut self, i: usize, request: Option<Request>) {
        if let Some(r) = request {
            let peer = self.lines[i].peer;
            self.lines[i].pending = self.ep.send_request(r, peer).ok();
        }
    }

    pub(super) fn on_register_response(&mut self, i: usize, response: &Response) {
        let (n, account) = (i + 1, self.lines[i].account.number.clone());
        let event = match self.lines[i].reg.on_response(self.clock.now, response) {
            None => return,
            Some(Outcome::Send(r)) => return self.send_register(i, Some(r)),
            Some(Outcome::Registered { expires }) => Event::Registered {
                line: n,
                account,
                expires,
            },
            Some(Outcome::Unregistered) => Event::Unregistered { line: n, account },
            Some(Outcome::Failed {
                status,
                reason,
                retry_in,
            }) => Event::RegistrationFailed {
                line: n,
                account,
                status,
                reason,
                retry_in,
            },
        };
        self.lines[i].pending = None;
        let registered = matches!(event, Event::Registered { .. });
        // The server is gone (timeout) or says it cannot serve: try the other one now.
        let fail_over = matches!(
            event,
            Event::RegistrationFailed {
                status: 408 | 503,
                ..
            }
        ) && self.lines[i].servers.len() > 1;
        self.emit(event);
        if registered {
            self.subscribe_mwi(i);
        }
        if fail_over {
            let line = &mut self.lines[i];
            let next = line
                .servers
                .iter()
                .position(|s| *s != line.peer.addr)
                .unwrap_or(0);
            line.peer.addr = line.servers[next];
            // A subscription lived on the other server.
            line.mwi = mwi::Mwi::default();
            let server = line.peer.addr.to_string();
            self.emit(Event::Failover { line: n, server });
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }
}
