#!/usr/bin/env python3
"""Fails when the modules of shared/src import each other in a cycle.

A module is a file (`mod.rs` stands for its folder). An edge is any `crate::…` or `super::…` path
in the module's code outside comments and its test module, resolved to the deepest module it
names; a module and the modules inside it are not edges (a parent declares its children, and a
child may read its parent). Every strongly connected group of more than one module is printed
with the edges that hold it together. Run by scripts/test.sh beside clippy.
"""
import os, re, sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
root='shared/src'
mods={}
for r,d,fs in os.walk(root):
  for f in fs:
    if not f.endswith('.rs'): continue
    p=os.path.join(r,f)[len(root)+1:-3]
    if p.endswith('/mod') or p=='mod': p=p[:-4] if p!='mod' else ''
    if p=='lib': p=''
    src=open(os.path.join(r,f)).read()
    i=src.find('#[cfg(test)]')
    if i>=0: src=src[:i]
    src='\n'.join(l for l in src.split('\n') if not l.strip().startswith('//'))
    mods[p]=src
def resolve(cur,path):
  parts=path.split('::')
  if parts[0]=='crate': base=[]; parts=parts[1:]
  elif parts[0]=='super':
    base=cur.split('/')[:-1] if cur else []
    parts=parts[1:]
    while parts and parts[0]=='super': base=base[:-1]; parts=parts[1:]
  else: return None
  best=None
  for i in range(len(parts)+1):
    cand='/'.join(base+parts[:i])
    if cand in mods: best=cand
  return best
def expand(prefix, group):
  """`a, b::c, d::{e, f}` under `prefix`, as whole paths."""
  out, depth, item = [], 0, ''
  for ch in group + ',':
    if ch == ',' and depth == 0:
      item = item.strip()
      if item:
        m = re.match(r'([A-Za-z_][A-Za-z0-9_:]*?)::\{(.*)\}$', item, re.S)
        if m:
          out += expand(prefix + '::' + m.group(1), m.group(2))
        else:
          out.append(prefix + '::' + item.split(' as ')[0].strip())
      item = ''
      continue
    depth += ch == '{'
    depth -= ch == '}'
    item += ch
  return out

def paths(src):
  """Every crate:: and super:: path of `src`, brace groups of `use` expanded."""
  found = re.findall(r'\b((?:crate|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)(?!::\{)', src)
  for m in re.finditer(r'\b((?:crate|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)::\{', src):
    depth, i = 1, m.end()
    while depth and i < len(src):
      depth += {'{': 1, '}': -1}.get(src[i], 0)
      i += 1
    found += expand(m.group(1), src[m.end():i - 1])
  return found

edges={m:set() for m in mods}
for m,src in mods.items():
  for u in paths(src):
    t=resolve(m,u)
    if t and t!=m and not m.startswith(t+'/') and not t.startswith(m+'/'):
      edges[m].add(t)
sys.setrecursionlimit(10000)
index={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
  index[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
  for w in edges[v]:
    if w not in index: sc(w); low[v]=min(low[v],low[w])
    elif w in on: low[v]=min(low[v],index[w])
  if low[v]==index[v]:
    comp=[]
    while True:
      w=st.pop();on.discard(w);comp.append(w)
      if w==v:break
    if len(comp)>1: sccs.append(comp)
for v in list(edges):
  if v not in index: sc(v)
for comp in sccs:
  print('import cycle among shared/src modules:', ', '.join(sorted(comp)))
  for a in sorted(comp):
    print('  ', a, '->', ', '.join(sorted(x for x in edges[a] if x in comp)))
if sccs:
  sys.exit(1)
print('shared/src: %d modules, no import cycle' % len(mods))
