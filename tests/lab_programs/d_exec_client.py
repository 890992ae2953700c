# client
import socket
import json
sock_client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
  sock_client.connect(('localhost', 9000))
  while True:
    cmd = input('input your cmd>>>:').strip()
    if not cmd: continue
    elif cmd == 'q': break
    sock_client.send(cmd.encode())
    data = sock_client.recv(1024) # 数据过大，产生数据丢失
    res_len = int(data.decode())
    # 循环接收数据
    received_size = 0
    cmd_result = b''
    while received_size < res_len:
      data = sock_client.recv(1024) # 数据过大，产生数据丢失
      cmd_result += data
      received_size += len(data)
    print(res_len, received_size)
    cod_res = json.loads(cmd_result.decode())
    print(f'命令执行状态{cod_res[0]}')
    print('命令执行结果', cod_res[1])
  sock_client.close()
except TimeoutError as e:
  print(e)
