//! Reads a query's whole result from a PostgreSQL-protocol server as fast as the server sends it,
//! for `scripts/bench-stream.sh` (a measurement tool, not a test):
//!
//! ```text
//! stream_bench URL rows 'SELECT ...'                 # extended protocol, binary result format
//! stream_bench URL copy 'COPY (SELECT ...) TO STDOUT' # COPY data (text or CSV: one row a line)
//! ```
//!
//! tokio-postgres asks for every result column in binary format and does not decode values it is
//! not asked for, so the client costs little beside the server. Prints `rows seconds bytes` (bytes
//! of COPY data; 0 for `rows`).

use std::time::Instant;

use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, mode, sql] = args.as_slice() else {
        return Err("usage: stream_bench URL rows|copy SQL".into());
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let start = Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    match mode.as_str() {
        "rows" => {
            let stream = client.query_raw(sql.as_str(), Vec::<&str>::new()).await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(row) = stream.next().await {
                row?;
                rows += 1;
            }
        }
        "copy" => {
            let stream = client.copy_out(sql.as_str()).await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
        other => return Err(format!("unknown mode {other}: rows or copy").into()),
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{rows} {seconds:.3} {bytes}");
    drop(client);
    connection.await??;
    Ok(())
}
