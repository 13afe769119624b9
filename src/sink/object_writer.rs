//! A blocking, buffered writer of one object in the warehouse's store.
//!
//! [`ObjectWriter`] buffers one part (8 MiB, within S3's multipart limits), uploads it
//! as a multipart part, and completes the upload on [`ObjectWriter::finish`]; small
//! objects are written with one put. The local store stages multipart uploads and
//! renames them into place on completion, so an object either exists whole or not at
//! all; a writer dropped unfinished aborts its upload.

use std::{
    io::{self, Write},
    sync::Arc,
};

use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use tokio::runtime::Handle;

use super::SinkError;

/// Size of one multipart part (S3 wants 5 MiB to 5 GiB, all but the last).
pub const PART_BYTES: usize = 8 << 20;

/// A blocking, buffered writer of one object.
#[derive(Debug)]
pub struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    runtime: Handle,
    buffer: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    written: u64,
}

impl ObjectWriter {
    /// A writer of `path`; the object appears only when [`finish`](Self::finish) succeeds.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, runtime: Handle) -> Self {
        Self {
            store,
            path,
            runtime,
            buffer: Vec::with_capacity(1 << 16),
            upload: None,
            written: 0,
        }
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn upload_part(&mut self) -> Result<(), object_store::Error> {
        let part = PutPayload::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART_BYTES),
        ));
        let (store, path) = (&self.store, &self.path);
        self.runtime.block_on(async {
            if self.upload.is_none() {
                self.upload = Some(store.put_multipart(path).await?);
            }
            let upload = self.upload.as_mut().expect("created above");
            upload.put_part(part).await
        })
    }

    /// Writes what is buffered and makes the object visible; returns its size.
    pub fn finish(mut self) -> Result<u64, SinkError> {
        self.complete()
    }

    /// As [`finish`](Self::finish), for a writer owned by another (the Parquet writer):
    /// nothing may be written after it.
    pub fn complete(&mut self) -> Result<u64, SinkError> {
        let path = self.path.clone();
        let store_error = |source| SinkError::Store {
            path: path.to_string(),
            source,
        };
        match self.upload.take() {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer));
                self.runtime
                    .block_on(self.store.put(&self.path, payload))
                    .map_err(store_error)?;
            }
            Some(mut upload) => {
                let last = PutPayload::from(std::mem::take(&mut self.buffer));
                self.runtime
                    .block_on(async {
                        if last.content_length() > 0 {
                            upload.put_part(last).await?;
                        }
                        upload.complete().await
                    })
                    .map_err(store_error)?;
            }
        }
        Ok(self.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buffer.len() >= PART_BYTES {
            self.upload_part().map_err(io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // An unfinished multipart upload is abandoned, not completed.
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}
