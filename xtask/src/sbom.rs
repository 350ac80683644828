//! The image's SBOM: a CycloneDX 1.5 JSON document of what its virtualenv holds, made from the lock and the
//! wheelhouse (pure), not guessed from a file system. Each installed wheel is a component: the locked name and
//! exact version, its purl, the sha256 of the very file installed (checked against poetry.lock when it was
//! downloaded) and the license its metadata states; the app itself is the document's subject, the base image a
//! component of its own. The same inputs give the same bytes (no time, a serial number derived from the
//! content): the document is a file of the image, whose digest must not depend on when it was built.
//!
//! It is written to the state directory (`target/xtask/apps/<name>/sbom.cdx.json`), copied into the image at
//! `dockerfile::SBOM` and named by the label `xtask.sbom`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use poetry_export::sha256;
use poetry_export::SelectedPackage;

use crate::config::{normalize, Config};
use crate::inventory::License;
use crate::json::Json;
use crate::path_deps;

/// The CycloneDX version written (its JSON schema ships in the `cyclonedx-python-lib` package).
pub(crate) const SPEC_VERSION: &str = "1.5";

/// What the SBOM says of the base image.
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    /// The reference the image is built `FROM` (`python:3.11-slim`, or `name@sha256:...` for a platform of an
    /// index).
    pub(crate) reference: String,
    /// The engine's image id (`sha256:...`, the digest of its configuration: the same in docker and podman).
    pub(crate) id: String,
}

/// Everything the document is made of.
pub(crate) struct Inputs<'a> {
    pub(crate) config: &'a Config,
    /// The locked packages of the image (main, `tool.xtask.groups`, `extras`).
    pub(crate) packages: &'a [SelectedPackage],
    /// The wheels installed: file name and sha256 (hex), the project's own wheel included.
    pub(crate) wheels: &'a [(String, String)],
    /// The project's own wheel's file name, when it is installed (package mode).
    pub(crate) project_wheel: Option<&'a str>,
    pub(crate) licenses: &'a BTreeMap<String, License>,
    pub(crate) base: &'a BaseImage,
    /// `CPython 3.11.2`.
    pub(crate) python: &'a str,
}

/// The CycloneDX document (pure).
pub(crate) fn document(inputs: &Inputs<'_>) -> Result<Json> {
    let config = inputs.config;
    let mut components = vec![Json::object([
        ("type", Json::string("container")),
        ("bom-ref", Json::string("base-image")),
        ("name", Json::string(&inputs.base.reference)),
        ("version", Json::string(&inputs.base.id)),
        ("description", Json::string("the base image")),
    ])];
    let mut refs = vec![Json::string("base-image")];
    let mut subject_hashes = Vec::new();
    for (file, sha256) in inputs.wheels {
        if Some(file.as_str()) == inputs.project_wheel {
            subject_hashes.push(hash(sha256));
            continue;
        }
        let Some((name, _, _)) = path_deps::parse_wheel_name(file) else {
            bail!("the wheelhouse holds {file}, which is not a wheel's name");
        };
        let Some(package) = inputs.packages.iter().find(|p| normalize(&p.name) == name) else {
            bail!("the wheelhouse holds {file}, which no locked package of the image names");
        };
        let purl = purl(package);
        let bom_ref = purl.clone().unwrap_or_else(|| format!("wheel:{file}"));
        let mut component = vec![
            ("type", Json::string("library")),
            ("bom-ref", Json::string(&bom_ref)),
            ("name", Json::string(&package.name)),
            ("version", Json::string(&package.version)),
        ];
        if let Some(purl) = purl {
            component.push(("purl", Json::string(purl)));
        }
        component.push(("hashes", Json::Array(vec![hash(sha256)])));
        if let Some(license) = inputs.licenses.get(file) {
            component.push(("licenses", licenses(license)));
        }
        let source = match package.source_kind.as_deref() {
            None => "pypi".to_string(),
            Some("legacy") => format!("index {}", package.source_url.as_deref().unwrap_or_default()),
            Some(kind) => format!("{kind} dependency, built to a wheel on the host"),
        };
        component
            .push(("properties", Json::Array(vec![property("xtask:wheel", file), property("xtask:source", &source)])));
        components.push(Json::object(component));
        refs.push(Json::string(bom_ref));
    }
    let subject_ref = format!("pkg:pypi/{}@{}", normalize(&config.project_name), encode(&config.project_version));
    let mut subject = vec![
        ("type", Json::string("application")),
        ("bom-ref", Json::string(&subject_ref)),
        ("name", Json::string(&config.project_name)),
        ("version", Json::string(&config.project_version)),
    ];
    if let Some(summary) = &config.project_summary {
        subject.push(("description", Json::string(summary)));
    }
    if !subject_hashes.is_empty() {
        subject.push(("hashes", Json::Array(subject_hashes)));
    }
    let metadata = Json::object([
        (
            "tools",
            Json::object([(
                "components",
                Json::Array(vec![Json::object([
                    ("type", Json::string("application")),
                    ("name", Json::string("cargo-xtask")),
                    ("version", Json::string(env!("CARGO_PKG_VERSION"))),
                ])]),
            )]),
        ),
        ("component", Json::object(subject)),
        (
            "properties",
            Json::Array(vec![
                property("xtask:image:platform", &config.platform),
                property("xtask:image:python", inputs.python),
                property("xtask:image:sbom-path", crate::dockerfile::SBOM),
            ]),
        ),
    ]);
    let dependencies =
        Json::Array(vec![Json::object([("ref", Json::string(&subject_ref)), ("dependsOn", Json::Array(refs))])]);
    let body = |serial: Option<String>| {
        let mut members = vec![("bomFormat", Json::string("CycloneDX")), ("specVersion", Json::string(SPEC_VERSION))];
        if let Some(serial) = serial {
            members.push(("serialNumber", Json::string(serial)));
        }
        members.extend([
            ("version", Json::number(1)),
            ("metadata", metadata.clone()),
            ("components", Json::Array(components.clone())),
            ("dependencies", dependencies.clone()),
        ]);
        Json::object(members)
    };
    // The serial number is the content's: the same document has the same one, another gets another.
    let digest = sha256::hex_digest(body(None).to_compact().as_bytes());
    Ok(body(Some(serial_number(&digest))))
}

/// `{"alg": "SHA-256", "content": <hex>}`
fn hash(sha256: &str) -> Json {
    Json::object([("alg", Json::string("SHA-256")), ("content", Json::string(sha256))])
}

fn property(name: &str, value: &str) -> Json {
    Json::object([("name", Json::string(name)), ("value", Json::string(value))])
}

/// CycloneDX's `licenses`: one SPDX expression, or licenses by name.
fn licenses(license: &License) -> Json {
    match license {
        License::Expression(expression) => Json::Array(vec![Json::object([("expression", Json::string(expression))])]),
        License::Names(names) => Json::Array(
            names
                .iter()
                .map(|name| Json::object([("license", Json::object([("name", Json::string(name))]))]))
                .collect(),
        ),
    }
}

/// The package URL of an index package (`pkg:pypi/<name>@<version>`, with `repository_url` for a private
/// index); `None` for a path dependency, which no index serves.
fn purl(package: &SelectedPackage) -> Option<String> {
    let base = format!("pkg:pypi/{}@{}", normalize(&package.name), encode(&package.version));
    match package.source_kind.as_deref() {
        None => Some(base),
        Some("legacy") => {
            let url = package.source_url.as_deref().unwrap_or_default();
            Some(format!("{base}?repository_url={}", encode(url)))
        }
        Some(_) => None,
    }
}

/// Percent-encodes what a purl component may not hold as it is (`+` of local versions, `:` and `/` of URLs).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `urn:uuid:` of the first 128 bits of `hex`, marked as a name-based (version 5) UUID of the RFC 4122 variant.
fn serial_number(hex: &str) -> String {
    let mut digits: Vec<char> = hex.chars().take(32).collect();
    digits[12] = '5';
    digits[16] = match digits[16] {
        '0' | '4' | '8' | 'c' => '8',
        '1' | '5' | '9' | 'd' => '9',
        '2' | '6' | 'a' | 'e' => 'a',
        _ => 'b',
    };
    let d: String = digits.into_iter().collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &d[0..8], &d[8..12], &d[12..16], &d[16..20], &d[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use poetry_export::PackageFile;

    fn package(name: &str, version: &str, kind: Option<&str>) -> SelectedPackage {
        SelectedPackage {
            name: name.into(),
            version: version.into(),
            marker: None,
            source_kind: kind.map(str::to_string),
            source_url: kind.map(|_| "https://pypi.example.org/simple".to_string()),
            files: vec![PackageFile { file: "x".into(), hash: "sha256:00".into() }],
            line: String::new(),
        }
    }

    #[test]
    fn purls_and_serials() {
        assert_eq!(purl(&package("typing-extensions", "4.16.0", None)).unwrap(), "pkg:pypi/typing-extensions@4.16.0");
        assert_eq!(
            purl(&package("mylib", "1.0+local", Some("legacy"))).unwrap(),
            "pkg:pypi/mylib@1.0%2Blocal?repository_url=https%3A%2F%2Fpypi.example.org%2Fsimple"
        );
        assert_eq!(purl(&package("mylib", "1.0", Some("directory"))), None);
        assert_eq!(normalize("Typing_Extensions"), "typing-extensions");
        let serial = serial_number(&"f".repeat(64));
        assert_eq!(serial, "urn:uuid:ffffffff-ffff-5fff-bfff-ffffffffffff");
    }

    #[test]
    fn the_document_names_each_wheel_with_its_hash_and_license() {
        let dir = std::env::temp_dir().join(format!("xtask-sbom-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("svc")).unwrap();
        std::fs::write(dir.join("svc/__init__.py"), "").unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"svc\"\nversion = \"1.2.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"uvicorn\"]\n\
             [tool.xtask]\napp = \"svc:app\"\n",
        )
        .unwrap();
        let config = Config::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let packages = [package("anyio", "4.16.0", None), package("uvicorn", "0.54.0", None)];
        let wheels = vec![
            ("anyio-4.16.0-py3-none-any.whl".to_string(), "aa".repeat(32)),
            ("svc-1.2.0-py3-none-any.whl".to_string(), "cc".repeat(32)),
            ("uvicorn-0.54.0-py3-none-any.whl".to_string(), "bb".repeat(32)),
        ];
        let mut licenses = BTreeMap::new();
        licenses.insert("anyio-4.16.0-py3-none-any.whl".to_string(), License::Expression("MIT".into()));
        licenses.insert("uvicorn-0.54.0-py3-none-any.whl".to_string(), License::Names(vec!["BSD License".into()]));
        let base = BaseImage { reference: "python:3.11-slim".into(), id: "sha256:12".into() };
        let inputs = Inputs {
            config: &config,
            packages: &packages,
            wheels: &wheels,
            project_wheel: Some("svc-1.2.0-py3-none-any.whl"),
            licenses: &licenses,
            base: &base,
            python: "CPython 3.11.2",
        };
        let doc = document(&inputs).unwrap();
        assert_eq!(document(&inputs).unwrap(), doc, "the same inputs, the same document");
        let text = doc.to_pretty();
        assert_eq!(crate::json::parse(&text).unwrap(), doc);
        let components = doc.get("components").and_then(Json::as_array).unwrap();
        assert_eq!(components.len(), 3, "{text}");
        let anyio = &components[1];
        assert_eq!(anyio.get("purl").and_then(Json::as_str), Some("pkg:pypi/anyio@4.16.0"));
        assert_eq!(
            anyio.get("hashes").unwrap().to_compact(),
            format!(r#"[{{"alg":"SHA-256","content":"{}"}}]"#, "aa".repeat(32))
        );
        assert_eq!(anyio.get("licenses").unwrap().to_compact(), r#"[{"expression":"MIT"}]"#);
        assert_eq!(components[2].get("licenses").unwrap().to_compact(), r#"[{"license":{"name":"BSD License"}}]"#);
        let subject = doc.get("metadata").and_then(|m| m.get("component")).unwrap();
        assert_eq!(subject.get("name").and_then(Json::as_str), Some("svc"));
        assert!(subject.get("hashes").unwrap().to_compact().contains(&"cc".repeat(32)));
        let stranger = vec![("left_pad-1.0-py3-none-any.whl".to_string(), "dd".repeat(32))];
        let err = document(&Inputs { wheels: &stranger, ..inputs }).unwrap_err().to_string();
        assert!(err.contains("no locked package of the image names"), "{err}");
    }
}
