//! A small TCP proxy for fault injection: clients connect to [`Proxy::port`] and are
//! forwarded to a target port on 127.0.0.1. A test can cut every open connection at
//! once ([`Proxy::sever`]), stop forwarding for a while without closing anything
//! ([`Proxy::stall`] — what a dead network looks like to both ends), and point new
//! connections at another server ([`Proxy::retarget`], e.g. a promoted standby).
//!
//! Threads, blocking sockets, bounded buffers; loopback only.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::HarnessError;

#[derive(Debug, Default)]
struct State {
    /// Both halves of every open connection, to shut down on [`Proxy::sever`].
    open: Mutex<Vec<TcpStream>>,
    /// While set, nothing is forwarded.
    stalled: AtomicBool,
    stop: AtomicBool,
}

/// A running proxy; stops (and cuts its connections) on drop.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `127.0.0.1:target`.
    pub fn start(target: u16) -> Result<Proxy, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| HarnessError::io("bind the proxy".into(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("read the proxy address".into(), e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| HarnessError::io("set up the proxy listener".into(), e))?;
        let state = Arc::new(State::default());
        let target = Arc::new(AtomicU16::new(target));
        {
            let state = state.clone();
            let target = target.clone();
            std::thread::spawn(move || accept_loop(&listener, &state, &target));
        }
        Ok(Proxy {
            port,
            target,
            state,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts every open connection (both directions), as a network failure or a reset
    /// would. New connections are accepted as before.
    pub fn sever(&self) -> usize {
        let mut open = self.state.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.len() / 2;
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        n
    }

    /// Forwards nothing for `d` (connections stay open, bytes wait), then resumes.
    pub fn stall(&self, d: Duration) {
        self.state.stalled.store(true, Ordering::SeqCst);
        std::thread::sleep(d);
        self.state.stalled.store(false, Ordering::SeqCst);
    }

    /// New connections go to `127.0.0.1:port` from now on.
    pub fn retarget(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.sever();
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>, target: &AtomicU16) {
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target.load(Ordering::SeqCst)))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                if let Ok(mut open) = state.open.lock() {
                    open.retain(|s| s.peer_addr().is_ok());
                    if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                        open.push(a);
                        open.push(b);
                    }
                }
                let st = state.clone();
                std::thread::spawn(move || pump(client, s2, &st));
                let st = state.clone();
                std::thread::spawn(move || pump(server, c2, &st));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Copies `from` → `to` until either side closes; holds bytes while stalled.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let since = Instant::now();
        while state.stalled.load(Ordering::SeqCst) && !state.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            if since.elapsed() > Duration::from_secs(600) {
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_severs_and_retargets() {
        let echo = TcpListener::bind("127.0.0.1:0").expect("bind");
        let eport = echo.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let p = Proxy::start(eport).expect("proxy");
        let mut c = TcpStream::connect(("127.0.0.1", p.port())).expect("connect");
        c.write_all(b"ping").expect("write");
        let mut b = [0u8; 4];
        c.read_exact(&mut b).expect("read");
        assert_eq!(&b, b"ping");
        assert_eq!(p.sever(), 1);
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = c.write_all(b"x");
        let mut rest = Vec::new();
        assert!(matches!(c.read_to_end(&mut rest), Ok(0) | Err(_)), "cut");
        // New connections work after a cut.
        let mut c = TcpStream::connect(("127.0.0.1", p.port())).expect("connect");
        c.write_all(b"pong").expect("write");
        c.read_exact(&mut b).expect("read");
        assert_eq!(&b, b"pong");
    }
}
