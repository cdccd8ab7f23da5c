//! Cores and NUMA nodes: read from the OS (Linux sysfs), or synthetic for tests.
//!
//! A synthetic topology such as `numa:2 core:2` describes 2 NUMA nodes of 2 cores each
//! (logical cores 0-3). Its cores are pinned onto the machine's real cores, round
//! robin, so that NUMA-aware code runs and is tested on a one-node machine.

use std::fmt;
use std::path::Path;

/// One NUMA node and its cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// NUMA node id.
    pub id: u32,
    /// Logical core ids on this node, ascending.
    pub cores: Vec<u32>,
}

/// A core chosen to run a pipeline instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorePlacement {
    /// Logical core id (what metrics and logs name).
    pub core: u32,
    /// NUMA node of the logical core.
    pub numa_node: u32,
    /// The OS core the thread is pinned to (the same as `core` unless synthetic).
    pub os_core: usize,
}

/// Problems reading or describing a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A synthetic topology string did not parse.
    #[error("invalid synthetic topology `{spec}`: {reason} (expected e.g. `numa:2 core:2`)")]
    Synthetic {
        /// The string given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS reported no usable core.
    #[error("the OS reports no usable core")]
    NoCores,
    /// hwloc could not load the topology.
    #[error("hwloc could not load the topology: {0}")]
    Hwloc(String),
}

/// The cores and NUMA nodes pipelines can run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    nodes: Vec<NumaNode>,
    /// OS cores to pin logical cores onto (round robin), for synthetic topologies.
    os_cores: Vec<usize>,
    synthetic: bool,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.synthetic { "synthetic " } else { "" };
        write!(f, "{kind}{} NUMA node(s):", self.nodes.len())?;
        for node in &self.nodes {
            write!(f, " node{}=[{}]", node.id, ranges(&node.cores))?;
        }
        Ok(())
    }
}

/// Pins the calling thread to OS core `os_core`; false if the OS refused.
pub fn pin_current_thread(os_core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: os_core })
}

/// `0-3,6` style list.
pub fn ranges(cores: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            i += 1;
            end = cores[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// Parses a sysfs CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

impl Topology {
    /// The machine's topology: from hwloc when built with the `hwloc` feature (and
    /// hwloc succeeds), from sysfs otherwise.
    pub fn detect() -> Result<Topology, TopologyError> {
        #[cfg(feature = "hwloc")]
        if let Ok(topology) = Self::detect_hwloc() {
            return Ok(topology);
        }
        Self::detect_sysfs()
    }

    /// The machine's topology from Linux sysfs: NUMA nodes from
    /// `/sys/devices/system/node`, restricted to the cores this process may run on; one
    /// node holding every usable core when sysfs says nothing.
    pub fn detect_sysfs() -> Result<Topology, TopologyError> {
        let usable: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if usable.is_empty() {
            return Err(TopologyError::NoCores);
        }
        let mut nodes = read_sysfs_nodes(Path::new("/sys/devices/system/node"));
        for node in &mut nodes {
            node.cores.retain(|c| usable.contains(&(*c as usize)));
        }
        nodes.retain(|n| !n.cores.is_empty());
        if nodes.is_empty() {
            nodes.push(NumaNode {
                id: 0,
                cores: usable.iter().map(|&c| c as u32).collect(),
            });
        }
        Ok(Topology {
            nodes,
            os_cores: usable,
            synthetic: false,
        })
    }

    /// A synthetic topology, e.g. `numa:2 core:2` (2 nodes of 2 cores). Its logical
    /// cores are pinned round robin onto the cores of `onto`.
    pub fn synthetic(spec: &str, onto: &Topology) -> Result<Topology, TopologyError> {
        let err = |reason: &str| TopologyError::Synthetic {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (mut numa, mut cores) = (None, None);
        for word in spec.split_whitespace() {
            let (key, value) = word
                .split_once(':')
                .ok_or_else(|| err(&format!("`{word}` is not `key:count`")))?;
            let n: u32 = value
                .parse()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| err(&format!("`{value}` is not a count between 1 and 1024")))?;
            let slot = match key {
                "numa" => &mut numa,
                "core" => &mut cores,
                other => {
                    return Err(err(&format!(
                        "unknown level `{other}` (use `numa` and `core`)"
                    )));
                }
            };
            if slot.replace(n).is_some() {
                return Err(err(&format!("`{key}` is given twice")));
            }
        }
        let (numa, cores) = (
            numa.unwrap_or(1),
            cores.ok_or_else(|| err("missing `core:N`"))?,
        );
        let nodes = (0..numa)
            .map(|id| NumaNode {
                id,
                cores: (id * cores..(id + 1) * cores).collect(),
            })
            .collect();
        Ok(Topology {
            nodes,
            os_cores: onto.os_cores.clone(),
            synthetic: true,
        })
    }

    /// NUMA nodes, ascending.
    pub fn numa_nodes(&self) -> &[NumaNode] {
        &self.nodes
    }

    /// Every logical core, ascending.
    pub fn cores(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .nodes
            .iter()
            .flat_map(|n| n.cores.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// Whether this topology is synthetic.
    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    /// Where logical `core` runs, if the topology has it.
    pub fn placement(&self, core: u32) -> Option<CorePlacement> {
        let node = self.nodes.iter().find(|n| n.cores.contains(&core))?;
        let os_core = if self.synthetic {
            let index = self.cores().iter().position(|&c| c == core)?;
            *self.os_cores.get(index % self.os_cores.len().max(1))?
        } else {
            core as usize
        };
        Some(CorePlacement {
            core,
            numa_node: node.id,
            os_core,
        })
    }
}

#[cfg(feature = "hwloc")]
impl Topology {
    /// The machine's topology as hwloc discovers it (the `hwloc` feature).
    pub fn detect_hwloc() -> Result<Topology, TopologyError> {
        let topology =
            hwlocality::Topology::new().map_err(|e| TopologyError::Hwloc(e.to_string()))?;
        let os_cores = topology
            .cpuset()
            .iter_set()
            .map(usize::from)
            .collect::<Vec<_>>();
        Self::from_hwloc(&topology, os_cores, false)
    }

    /// An hwloc synthetic topology such as `node:2 core:2 pu:1`, its processing units
    /// pinned round robin onto the cores of `onto`.
    pub fn hwloc_synthetic(description: &str, onto: &Topology) -> Result<Topology, TopologyError> {
        let topology = hwlocality::Topology::builder()
            .from_synthetic(description)
            .map_err(|e| TopologyError::Synthetic {
                spec: description.to_string(),
                reason: e.to_string(),
            })?
            .build()
            .map_err(|e| TopologyError::Hwloc(e.to_string()))?;
        Self::from_hwloc(&topology, onto.os_cores.clone(), true)
    }

    fn from_hwloc(
        topology: &hwlocality::Topology,
        os_cores: Vec<usize>,
        synthetic: bool,
    ) -> Result<Topology, TopologyError> {
        use hwlocality::object::types::ObjectType;
        let mut nodes: Vec<NumaNode> = topology
            .objects_with_type(ObjectType::NUMANode)
            .filter_map(|node| {
                let cores = node
                    .cpuset()?
                    .iter_set()
                    .map(|i| u32::try_from(usize::from(i)).unwrap_or(u32::MAX))
                    .filter(|&c| synthetic || os_cores.contains(&(c as usize)))
                    .collect::<Vec<u32>>();
                Some(NumaNode {
                    id: u32::try_from(node.os_index()?).ok()?,
                    cores,
                })
            })
            .filter(|n| !n.cores.is_empty())
            .collect();
        nodes.sort_by_key(|n| n.id);
        if nodes.is_empty() && !os_cores.is_empty() {
            nodes.push(NumaNode {
                id: 0,
                cores: os_cores.iter().map(|&c| c as u32).collect(),
            });
        }
        if nodes.is_empty() {
            return Err(TopologyError::NoCores);
        }
        Ok(Topology {
            nodes,
            os_cores,
            synthetic,
        })
    }
}

fn read_sysfs_nodes(root: &Path) -> Vec<NumaNode> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id: u32 = name.strip_prefix("node")?.parse().ok()?;
            let list = std::fs::read_to_string(e.path().join("cpulist")).ok()?;
            Some(NumaNode {
                id,
                cores: parse_cpu_list(&list)?,
            })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// Which cores a pipeline runs on: one instance per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreAllocation {
    /// Every core of the topology.
    AllCores,
    /// The first `n` cores.
    Count(usize),
    /// These logical cores.
    Set(Vec<u32>),
}

impl CoreAllocation {
    /// The placements, or a message naming what the machine lacks.
    pub fn resolve(&self, topology: &Topology) -> Result<Vec<CorePlacement>, String> {
        let available = topology.cores();
        let cores: Vec<u32> = match self {
            CoreAllocation::AllCores => available.clone(),
            CoreAllocation::Count(0) => return Err("a core count must be at least 1".into()),
            CoreAllocation::Count(n) if *n > available.len() => {
                return Err(format!(
                    "{n} cores requested but the topology has {} ({})",
                    available.len(),
                    ranges(&available)
                ));
            }
            CoreAllocation::Count(n) => available[..*n].to_vec(),
            CoreAllocation::Set(set) => {
                if let Some(missing) = set.iter().find(|c| !available.contains(c)) {
                    return Err(format!(
                        "core {missing} is not on this machine (cores {})",
                        ranges(&available)
                    ));
                }
                let mut set = set.clone();
                set.sort_unstable();
                set.dedup();
                set
            }
        };
        Ok(cores
            .into_iter()
            .filter_map(|c| topology.placement(c))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_node() -> Topology {
        Topology {
            nodes: vec![NumaNode {
                id: 0,
                cores: vec![0, 1],
            }],
            os_cores: vec![0, 1],
            synthetic: false,
        }
    }

    #[test]
    fn cpu_lists_parse_like_sysfs_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn a_synthetic_topology_spreads_its_cores_over_the_real_ones() {
        let t = Topology::synthetic("numa:2 core:2", &one_node()).unwrap();
        assert_eq!(t.numa_nodes().len(), 2);
        assert_eq!(t.cores(), vec![0, 1, 2, 3]);
        let p = t.placement(3).unwrap();
        assert_eq!((p.numa_node, p.os_core), (1, 1));
        assert_eq!(t.placement(2).unwrap().os_core, 0);
        assert!(t.to_string().contains("node1=[2-3]"));
    }

    #[test]
    fn bad_synthetic_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("numa:2", "missing `core:N`"),
            ("numa:x core:1", "`x` is not a count"),
            ("socket:1 core:1", "unknown level `socket`"),
            ("core:1 core:2", "given twice"),
            ("core", "not `key:count`"),
        ] {
            let e = Topology::synthetic(spec, &one_node())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn core_allocations_resolve_or_name_what_is_missing() {
        let t = Topology::synthetic("numa:2 core:2", &one_node()).unwrap();
        assert_eq!(CoreAllocation::AllCores.resolve(&t).unwrap().len(), 4);
        assert_eq!(CoreAllocation::Count(3).resolve(&t).unwrap()[2].core, 2);
        let e = CoreAllocation::Count(9).resolve(&t).unwrap_err();
        assert!(e.contains("9 cores requested") && e.contains("0-3"), "{e}");
        let e = CoreAllocation::Set(vec![1, 7]).resolve(&t).unwrap_err();
        assert_eq!(e, "core 7 is not on this machine (cores 0-3)");
        assert!(CoreAllocation::Count(0).resolve(&t).is_err());
    }

    #[cfg(feature = "hwloc")]
    #[test]
    fn hwloc_sees_the_cores_sysfs_sees() {
        let sysfs = Topology::detect_sysfs().unwrap();
        let hwloc = Topology::detect_hwloc().unwrap();
        assert_eq!(hwloc.cores(), sysfs.cores());
        assert_eq!(hwloc.numa_nodes().len(), sysfs.numa_nodes().len());
    }

    #[cfg(feature = "hwloc")]
    #[test]
    fn an_hwloc_synthetic_machine_has_two_numa_nodes() {
        let t = Topology::hwloc_synthetic("node:2 core:2 pu:1", &one_node()).unwrap();
        assert!(t.is_synthetic());
        assert_eq!(t.numa_nodes().len(), 2);
        assert_eq!(t.numa_nodes()[1].cores, vec![2, 3]);
        assert_eq!(t.placement(3).unwrap().numa_node, 1);
        let e = Topology::hwloc_synthetic("node:two", &one_node()).unwrap_err();
        assert!(e.to_string().contains("node:two"), "{e}");
    }

    #[test]
    fn the_machine_topology_has_at_least_one_core() {
        let t = Topology::detect().unwrap();
        assert!(!t.cores().is_empty());
        let core = t.cores()[0];
        assert_eq!(t.placement(core).unwrap().os_core, core as usize);
    }
}
