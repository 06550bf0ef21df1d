//! Column buffers and the Parquet files they become: a table is a list of typed
//! columns; rows are appended one value per column, in order, and flushed as a row
//! group when enough have gathered.
//!
//! Written on parquet's column API, not arrow's: eprof already holds its data in
//! columns, so an arrow layer would only copy it once more (and doubles the compile).

use std::fs::File;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::error::Error;

/// Physical and logical type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// UTF-8 text (dictionary-encoded).
    Str,
    I32,
    I64,
    /// Unsigned 64-bit (`UBIGINT` in DuckDB).
    U64,
    F32,
    F64,
    Bool,
    /// Milliseconds since the Unix epoch, UTC.
    TimestampMs,
    /// Microseconds since the Unix epoch, UTC.
    TimestampUs,
    /// A list of texts (never null; empty when there are none).
    StrList,
}

impl Ty {
    /// How `docs/dataset.md` names the type (DuckDB's names).
    pub fn sql(self) -> &'static str {
        match self {
            Ty::Str => "VARCHAR",
            Ty::I32 => "INTEGER",
            Ty::I64 => "BIGINT",
            Ty::U64 => "UBIGINT",
            Ty::F32 => "FLOAT",
            Ty::F64 => "DOUBLE",
            Ty::Bool => "BOOLEAN",
            Ty::TimestampMs | Ty::TimestampUs => "TIMESTAMP WITH TIME ZONE",
            Ty::StrList => "VARCHAR[]",
        }
    }
}

/// One column of a table: its name, type and whether it may be null.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
}

pub const fn req(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: false,
    }
}

pub const fn opt(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: true,
    }
}

/// The Parquet schema of a table, in the message syntax parquet parses.
pub fn message_type(table: &str, cols: &[Col]) -> String {
    let mut s = format!("message {table} {{\n");
    for c in cols {
        let rep = if c.nullable { "optional" } else { "required" };
        let (physical, logical) = match c.ty {
            Ty::Str => ("binary", " (STRING)"),
            Ty::I32 => ("int32", ""),
            Ty::I64 => ("int64", ""),
            Ty::U64 => ("int64", " (INTEGER(64,false))"),
            Ty::F32 => ("float", ""),
            Ty::F64 => ("double", ""),
            Ty::Bool => ("boolean", ""),
            Ty::TimestampMs => ("int64", " (TIMESTAMP(MILLIS,true))"),
            Ty::TimestampUs => ("int64", " (TIMESTAMP(MICROS,true))"),
            Ty::StrList => {
                s.push_str(&format!(
                    "  required group {} (LIST) {{ repeated group list {{ required binary element (STRING); }} }}\n",
                    c.name
                ));
                continue;
            }
        };
        s.push_str(&format!("  {rep} {physical} {}{logical};\n", c.name));
    }
    s.push('}');
    s
}

enum Values {
    Bytes(Vec<ByteArray>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

impl Values {
    fn of(ty: Ty) -> Values {
        match ty {
            Ty::Str | Ty::StrList => Values::Bytes(Vec::new()),
            Ty::I32 => Values::I32(Vec::new()),
            Ty::I64 | Ty::U64 | Ty::TimestampMs | Ty::TimestampUs => Values::I64(Vec::new()),
            Ty::F32 => Values::F32(Vec::new()),
            Ty::F64 => Values::F64(Vec::new()),
            Ty::Bool => Values::Bool(Vec::new()),
        }
    }
}

/// A value for one cell. `None` is null (only in a nullable column).
pub enum V<'a> {
    Str(Option<&'a str>),
    /// Text already made into a Parquet value: repeated texts (run id, site names,
    /// labels) are built once per run and shared (a reference count, not a copy).
    Text(Option<&'a ByteArray>),
    I32(Option<i32>),
    I64(Option<i64>),
    U64(Option<u64>),
    F32(Option<f32>),
    F64(Option<f64>),
    Bool(Option<bool>),
    List(&'a [String]),
}

struct Column {
    col: Col,
    values: Values,
    def: Vec<i16>,
    rep: Vec<i16>,
}

/// Rows gathered before they are written as one row group: large enough for good
/// compression and few row groups, small enough to bound memory on `--all`.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// One Parquet file being written: a table's columns, buffered.
pub struct TableWriter {
    name: &'static str,
    columns: Vec<Column>,
    rows: usize,
    written: u64,
    file: SerializedFileWriter<File>,
}

impl TableWriter {
    pub fn create(name: &'static str, cols: &[Col], file: File) -> Result<Self, Error> {
        let schema = parse_message_type(&message_type(name, cols))
            .map_err(|e| Error::Parquet(format!("schema of {name}: {e}")))?;
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(true)
            .set_created_by(format!("eprof {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props))
            .map_err(|e| Error::Parquet(format!("{name}: {e}")))?;
        Ok(TableWriter {
            name,
            columns: cols
                .iter()
                .map(|&col| Column {
                    col,
                    values: Values::of(col.ty),
                    def: Vec::new(),
                    rep: Vec::new(),
                })
                .collect(),
            rows: 0,
            written: 0,
            file,
        })
    }

    /// Append one row, a value per column in the table's order. A value of the wrong
    /// type, a null in a required column or a wrong count is a bug in this crate and
    /// panics (the tests write every table).
    pub fn row(&mut self, cells: &[V]) -> Result<(), Error> {
        assert_eq!(
            cells.len(),
            self.columns.len(),
            "table {}: {} values for {} columns",
            self.name,
            cells.len(),
            self.columns.len()
        );
        for (c, v) in self.columns.iter_mut().zip(cells) {
            c.push(v, self.name);
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.written + self.rows as u64
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let name = self.name;
        let err = |e: parquet::errors::ParquetError| Error::Parquet(format!("{name}: {e}"));
        let mut rg = self.file.next_row_group().map_err(err)?;
        for c in &mut self.columns {
            let Some(mut w) = rg.next_column().map_err(err)? else {
                return Err(Error::Parquet(format!(
                    "{name}: fewer columns than the schema"
                )));
            };
            let def = (c.col.nullable || c.col.ty == Ty::StrList).then_some(&c.def[..]);
            let rep = (c.col.ty == Ty::StrList).then_some(&c.rep[..]);
            match &mut c.values {
                Values::Bytes(v) => {
                    w.typed::<ByteArrayType>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
                Values::I32(v) => {
                    w.typed::<Int32Type>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
                Values::I64(v) => {
                    w.typed::<Int64Type>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
                Values::F32(v) => {
                    w.typed::<FloatType>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
                Values::F64(v) => {
                    w.typed::<DoubleType>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
                Values::Bool(v) => {
                    w.typed::<BoolType>()
                        .write_batch(v, def, rep)
                        .map_err(err)?;
                    v.clear();
                }
            }
            c.def.clear();
            c.rep.clear();
            w.close().map_err(err)?;
        }
        rg.close().map_err(err)?;
        self.written += self.rows as u64;
        self.rows = 0;
        Ok(())
    }

    /// Write what is buffered and the file's footer; the file is complete after this.
    pub fn finish(mut self) -> Result<u64, Error> {
        self.flush()?;
        let name = self.name;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::Parquet(format!("{name}: {e}")))?;
        file.sync_all()?;
        Ok(self.written)
    }
}

impl Column {
    fn push(&mut self, v: &V, table: &str) {
        let col = self.col;
        let mismatch = || -> ! {
            panic!(
                "table {table}, column {}: value does not fit {:?}",
                col.name, col.ty
            )
        };
        // Definition level of a nullable column: 1 present, 0 null.
        let mut present = |is: bool| {
            assert!(
                is || col.nullable,
                "table {table}: {} is required",
                col.name
            );
            if col.nullable {
                self.def.push(i16::from(is));
            }
            is
        };
        match (v, &mut self.values) {
            (V::Str(x), Values::Bytes(out)) if col.ty == Ty::Str => {
                if present(x.is_some()) {
                    out.push(ByteArray::from(x.unwrap_or_default().as_bytes().to_vec()));
                }
            }
            (V::Text(x), Values::Bytes(out)) if col.ty == Ty::Str => {
                if present(x.is_some()) {
                    out.push(x.cloned().unwrap_or_default());
                }
            }
            (V::List(items), Values::Bytes(out)) if col.ty == Ty::StrList => {
                // A required list of required texts: definition 0 is an empty list,
                // 1 an element; repetition 0 starts the row's list, 1 continues it.
                if items.is_empty() {
                    self.def.push(0);
                    self.rep.push(0);
                }
                for (i, s) in items.iter().enumerate() {
                    self.def.push(1);
                    self.rep.push(i16::from(i > 0));
                    out.push(ByteArray::from(s.as_bytes().to_vec()));
                }
            }
            (V::I32(x), Values::I32(out)) => {
                if present(x.is_some()) {
                    out.push(x.unwrap_or_default());
                }
            }
            (V::I64(x), Values::I64(out))
                if matches!(col.ty, Ty::I64 | Ty::TimestampMs | Ty::TimestampUs) =>
            {
                if present(x.is_some()) {
                    out.push(x.unwrap_or_default());
                }
            }
            (V::U64(x), Values::I64(out)) if col.ty == Ty::U64 => {
                if present(x.is_some()) {
                    // Parquet stores UINT_64 in INT64's bits.
                    out.push(x.unwrap_or_default().cast_signed());
                }
            }
            (V::F32(x), Values::F32(out)) => {
                if present(x.is_some()) {
                    out.push(x.unwrap_or_default());
                }
            }
            (V::F64(x), Values::F64(out)) => {
                if present(x.is_some()) {
                    out.push(x.unwrap_or_default());
                }
            }
            (V::Bool(x), Values::Bool(out)) => {
                if present(x.is_some()) {
                    out.push(x.unwrap_or_default());
                }
            }
            _ => mismatch(),
        }
    }
}
