#[test]
fn s3_settings_parse() {
    let text = format!(
        "[warehouse]\nurl = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:8333\"\nallow_http = true\nmax_retries = 3\n{MINIMAL}"
    );
    let config = Config::parse(&text, Path::new("p.toml")).unwrap();
    assert_eq!(config.warehouse.store.allow_http, Some(true));
    assert_eq!(config.warehouse.store.max_retries, 3);
}

use parquet::basic::{Compression, ZstdLevel};

use super::*;
use crate::{
    auth::{AuthConfig, SecretSource},
    bulk::BulkConfig,
    source::SourceKind,
    warehouse::{PartitionBy, WarehouseLocation},
};

const MINIMAL: &str = "[[sources]]\nname = \"s\"\nkind = \"files\"\npaths = [\"data\"]\n";

#[test]
fn committed_pipeline_toml_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.sources[0].name, "sample");
    assert_eq!(
        config.parquet.compression,
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
    );
    assert_eq!(config.ingest_settings().merge_max_keys.get(), 200_000);
}

#[test]
fn schedules_and_daemon_settings_are_validated() {
    let config = Config::parse(
        &format!("[daemon]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_sources = 3\n{MINIMAL}schedule = \"*/5 * * * *\"\n"),
        Path::new("p.toml"),
    )
    .unwrap();
    assert_eq!(config.daemon.max_concurrent_sources.get(), 3);
    assert_eq!(
        config.sources[0].schedule.as_ref().unwrap().expression(),
        "*/5 * * * *"
    );
    let defaults = Config::parse(MINIMAL, Path::new("p.toml")).unwrap();
    assert_eq!(defaults.daemon.listen.to_string(), "127.0.0.1:9464");
    assert!(defaults.sources[0].schedule.is_none());
    for (extra, key) in [
        ("[daemon]\nlisten = \"nowhere\"\n", "daemon.listen"),
        (
            "[daemon]\nmax_concurrent_sources = 0\n",
            "daemon.max_concurrent_sources",
        ),
    ] {
        let err = Config::parse(&format!("{extra}{MINIMAL}"), Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let err = Config::parse(
        &format!("{MINIMAL}schedule = \"every night\"\n"),
        Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("sources[0].schedule"), "{err}");
}

#[test]
fn commented_bulk_example_in_pipeline_toml_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("# --- bulk source example").unwrap();
    let end = text.find("# --- end of the bulk source example").unwrap();
    let example: String = text[start..end]
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("# #"))
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let config = Config::parse(&example, &path).unwrap();
    let SourceKind::Bulk { client } = &config.sources[0].kind else {
        panic!("a bulk source");
    };
    assert_eq!(client.base_url, "https://ehr.example.org/fhir");
    assert_eq!(**client, {
        let mut expected = BulkConfig::new("https://ehr.example.org/fhir");
        expected.auth = AuthConfig::Bearer {
            token: SecretSource::Env("EHR_TOKEN".into()),
        };
        expected
    });
}

#[test]
fn defaults_fill_missing_sections_and_paths_are_relative_to_the_file() {
    let config = Config::parse(MINIMAL, Path::new("/etc/fi/pipeline.toml")).unwrap();
    assert_eq!(
        config.warehouse.location,
        WarehouseLocation::Local("/etc/fi/warehouse".into())
    );
    assert_eq!(config.warehouse.store.max_retries, 10);
    assert_eq!(config.warehouse.partition_by, PartitionBy::ExportDate);
    let SourceKind::Files { paths } = &config.sources[0].kind else {
        panic!("a files source");
    };
    assert_eq!(paths[0], Path::new("/etc/fi/data"));
    assert_eq!(config.decode.max_line_bytes, 64 << 20);
}

#[test]
fn unknown_key_names_key_and_file() {
    let err = Config::parse(
        &format!("{MINIMAL}\n[parquet]\ncodec = \"zstd\"\n"),
        Path::new("p.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("p.toml") && msg.contains("codec"), "{msg}");
}

#[test]
fn bad_values_name_the_key() {
    for (extra, key) in [
        (
            "[parquet]\ncompression = \"brotli9\"\n",
            "parquet.compression",
        ),
        (
            "[parquet]\ncompression_level = 99\n",
            "parquet.compression_level",
        ),
        (
            "[warehouse]\npartition_by = \"day\"\n",
            "warehouse.partition_by",
        ),
        (
            "[quarantine]\nmax_rejected_fraction = 2.0\n",
            "quarantine.max_rejected_fraction",
        ),
        ("[decode]\nbatch_rows = 0\n", "decode.batch_rows"),
        (
            "[warehouse]\nmerge_max_keys = 0\n",
            "warehouse.merge_max_keys",
        ),
        ("[warehouse]\nurl = \"ftp://x/y\"\n", "warehouse.url"),
        ("[warehouse]\nurl = \"s3:///y\"\n", "warehouse.url"),
        ("[warehouse]\nregion = \"eu-west-1\"\n", "warehouse.region"),
        (
            "[warehouse]\nurl = \"s3://b\"\nendpoint = \"localhost:1\"\n",
            "warehouse.endpoint",
        ),
    ] {
        let err = Config::parse(&format!("{MINIMAL}\n{extra}"), Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let err = Config::parse("", Path::new("p.toml")).unwrap_err();
    assert!(err.to_string().contains("sources"), "{err}");
}

const BULK: &str = "[[sources]]\nname = \"ehr\"\nkind = \"bulk\"\n\
    [sources.bulk]\nbase_url = \"https://ehr.example.org/fhir\"\ntypes = [\"Patient\"]\n\
    [sources.bulk.auth]\ntype = \"bearer\"\ntoken = { file = \"secrets/token\" }\n";

#[test]
fn bulk_source_parses_with_auth_files_relative_to_the_config() {
    let config = Config::parse(BULK, Path::new("/etc/fi/pipeline.toml")).unwrap();
    let SourceKind::Bulk { client } = &config.sources[0].kind else {
        panic!("a bulk source");
    };
    assert_eq!(client.types, ["Patient"]);
    assert_eq!(client.parallel_downloads, 4);
    assert_eq!(
        client.auth,
        AuthConfig::Bearer {
            token: SecretSource::File("/etc/fi/secrets/token".into())
        }
    );
}

#[test]
fn bulk_source_errors_name_the_key() {
    for (text, key) in [
        (
            "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n",
            "sources[0].bulk",
        ),
        (
            "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"nope\"\n",
            "sources[0].bulk",
        ),
        (
            "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"http://x\"\ntoken = \"abc\"\n",
            "token",
        ),
        (
            "[[sources]]\nname = \"e\"\nkind = \"bulk\"\n[sources.bulk]\nbase_url = \"http://x\"\n[sources.bulk.auth]\ntype = \"bearer\"\ntoken = \"inline\"\n",
            "`sources[0].bulk.auth.token` (line 8, column 9): a secret is never written",
        ),
    ] {
        let err = Config::parse(text, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}
