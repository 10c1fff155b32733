//! `COPY (query) TO STDOUT` (and `COPY table TO STDOUT`): the query's rows as CopyData in PostgreSQL's
//! text, CSV or binary format, one CopyData per row: values written by the same per-column encoders
//! as DataRows ([`RowWriter`]); text (one-byte delimiter) and binary rows framed and escaped there
//! too, a batch's rows in one buffer, when every column has such an encoder; otherwise (CSV,
//! columns left to arrow-pg) framed and escaped by `pgwire`'s [`CopyEncoder`]. Rows stream batch by
//! batch; the query stays cancelable meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut, BytesMut};
use datafusion::logical_expr::LogicalPlan;
use futures::{StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;

use super::encoding::{self, RowWriter, rows_in_one_buffer};
use super::errors;
use super::run::start;
use super::session::Session;
use super::statement::{CopyFormat, CopyOptions};

/// PGCOPY binary header: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Starts the query and returns the CopyOut response streaming its rows.
pub async fn copy_out(
    session: &Session,
    sql: &str,
    plan: LogicalPlan,
    options: &CopyOptions,
) -> PgWireResult<CopyResponse> {
    let (schema, batches, guard) = start(session, sql, plan).await?;
    let binary = options.format == CopyFormat::Binary;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = Arc::new(encoding::fields(
        &schema,
        &format,
        session.format_options(),
    )?);
    let mut encoder = new_encoder(fields.clone(), options);
    let mut prefix = Vec::new();
    if options.header && options.format != CopyFormat::Binary {
        prefix.push(Ok(header_line(&fields, options)));
    }
    let columns = fields.len();
    // Rows written here without pgwire's encoder: text with a one-byte delimiter, and binary.
    let direct = match options.format {
        CopyFormat::Binary => Some(Direct::Binary),
        CopyFormat::Text => match options.delimiter.unwrap_or('\t') {
            c if c.is_ascii() => Some(Direct::Text {
                delimiter: c as u8,
                null: options
                    .null
                    .clone()
                    .unwrap_or_else(|| "\\N".into())
                    .into_bytes(),
            }),
            _ => None,
        },
        CopyFormat::Csv => None,
    };
    let mut header_pending = true;
    let rows = batches
        .map(move |batch| {
            let _registered = &guard;
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    return stream::iter(vec![Err(errors::user_error(errors::datafusion_error(
                        &e,
                    )))]);
                }
            };
            // Values are written by our per-column encoders (as DataRows are), arrow-pg's
            // only for the types they leave to it; one CopyData per row, as PostgreSQL sends
            // (psycopg's `Copy.rows()` reads one row per message).
            let mut writer = RowWriter::for_copy(Arc::clone(&fields), &batch, binary);
            let mut out = Vec::with_capacity(batch.num_rows());
            if let Some(direct) = direct.as_ref().filter(|_| writer.writes_all()) {
                // The batch's rows into one buffer, each CopyData a part of it.
                let (rows, failed) =
                    rows_in_one_buffer(batch.num_rows(), columns, |row, buffer| match direct {
                        Direct::Text { delimiter, null } => {
                            writer.copy_text_row(&batch, row, *delimiter, null, buffer)
                        }
                        Direct::Binary => {
                            if std::mem::take(&mut header_pending) {
                                buffer.extend_from_slice(BINARY_HEADER);
                            }
                            writer.copy_binary_row(&batch, row, buffer)
                        }
                    });
                out.extend(rows.into_iter().map(|row| Ok(CopyData::new(row.freeze()))));
                out.extend(failed.map(Err));
                return stream::iter(out);
            }
            for row in 0..batch.num_rows() {
                if let Err(e) = writer.write_row(&mut encoder, &batch, row) {
                    out.push(Err(e));
                    break;
                }
                out.push(Ok(encoder.take_copy()));
            }
            stream::iter(out)
        })
        .flatten();
    let data: std::pin::Pin<Box<dyn futures::Stream<Item = PgWireResult<CopyData>> + Send>> =
        if binary {
            // The encoder writes the header before the first row; an empty result still needs one
            // (`CopyResponse` appends the trailer).
            let saw_row = Arc::new(AtomicBool::new(false));
            let seen = saw_row.clone();
            Box::pin(
                rows.inspect(move |item| {
                    if item.is_ok() {
                        seen.store(true, Ordering::Relaxed);
                    }
                })
                .chain(stream::once(async move {
                    let mut end = BytesMut::new();
                    if !saw_row.load(Ordering::Relaxed) {
                        end.put_slice(BINARY_HEADER);
                    }
                    Ok(CopyData::new(end.freeze()))
                })),
            )
        } else {
            Box::pin(stream::iter(prefix).chain(rows))
        };
    Ok(CopyResponse::new(i8::from(binary), columns, data))
}

/// The formats whose rows [`RowWriter`] writes whole (see [`copy_out`]).
enum Direct {
    Text { delimiter: u8, null: Vec<u8> },
    Binary,
}

fn new_encoder(fields: Arc<Vec<FieldInfo>>, options: &CopyOptions) -> CopyEncoder {
    match options.format {
        CopyFormat::Binary => CopyEncoder::new_binary(fields),
        CopyFormat::Text => CopyEncoder::new_text(
            fields,
            CopyTextOptions {
                delimiter: options.delimiter.unwrap_or('\t').to_string().into(),
                null_string: options.null.clone().unwrap_or_else(|| "\\N".into()).into(),
            },
        ),
        CopyFormat::Csv => CopyEncoder::new_csv(
            fields,
            CopyCsvOptions {
                delimiter: options.delimiter.unwrap_or(',').to_string().into(),
                quote: options.quote.unwrap_or('"').to_string().into(),
                escape: options
                    .escape
                    .or(options.quote)
                    .unwrap_or('"')
                    .to_string()
                    .into(),
                null_string: options.null.clone().unwrap_or_default().into(),
                force_quote: vec![],
            },
        ),
    }
}

/// The `HEADER` line: column names, delimited (and quoted in CSV when needed).
fn header_line(fields: &[FieldInfo], options: &CopyOptions) -> CopyData {
    let csv = options.format == CopyFormat::Csv;
    let delimiter = options.delimiter.unwrap_or(if csv { ',' } else { '\t' });
    let quote = options.quote.unwrap_or('"');
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            let name = f.name();
            if csv && (name.contains(delimiter) || name.contains(quote) || name.contains('\n')) {
                let doubled = name.replace(quote, &format!("{quote}{quote}"));
                format!("{quote}{doubled}{quote}")
            } else {
                name.to_string()
            }
        })
        .collect();
    CopyData::new(format!("{}\n", names.join(&delimiter.to_string())).into())
}
