//! `wss://` end to end on loopback: makes a private CA and a certificate
//! for `localhost` with rcgen, serves the embedded echo server over TLS,
//! connects trusting only that CA, and shows what was negotiated; then
//! shows what the client says about a server it must not trust.
//!
//!     cargo run --release -p floodgate --example tls

use floodgate::tls::RootCertificates;
use floodgate::Client;
use floodgate_server::{echo, Server};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A CA, and a server certificate it signs.
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let server_key = KeyPair::generate()?;
    let server_cert =
        CertificateParams::new(vec!["localhost".into()])?.signed_by(&server_key, &ca, &ca_key)?;

    let tls = floodgate_server::tls::server_config_from_pem(
        server_cert.pem().as_bytes(),
        server_key.serialize_pem().as_bytes(),
    )?;
    let server = Server::bind_tls(
        "127.0.0.1:0",
        floodgate_server::Options::default(),
        tls,
        echo,
    )?;
    let url = format!("wss://localhost:{}/", server.local_addr().port());

    let mut ws = Client::builder()
        .tls_roots(RootCertificates::None)
        .add_root_certificates_pem(ca.pem().as_bytes())
        .connect(&url)?;
    let tls = ws.get_ref().tls().expect("wss:// runs over TLS");
    println!(
        "connected to {url}: {}, ALPN {:?}",
        tls.protocol_version().unwrap_or_default(),
        tls.alpn_protocol().map(String::from_utf8)
    );
    ws.send_text("hello over TLS")?;
    println!("echo: {}", ws.recv()?.as_text().unwrap_or_default());
    ws.close(1000, "done")?;

    // The same server, from a client that trusts only Mozilla's roots.
    match Client::builder()
        .tls_roots(RootCertificates::Mozilla)
        .connect(&url)
    {
        Err(e) => println!("without the CA: {e}"),
        Ok(_) => return Err("a client without the CA must refuse the server".into()),
    }
    Ok(())
}
